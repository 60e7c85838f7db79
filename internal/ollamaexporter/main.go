package ollamaexporter

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Command is the rag-server subcommand that runs the exporter.
const Command = "ollama-exporter"

// DefaultListen is the sidecar's port (named ollama-metrics in the Ollama pod).
const DefaultListen = ":9400"

// Main runs `rag-server ollama-exporter [flags]` until SIGTERM or ctx ends; args exclude the
// subcommand. Exit status 2 means the flags were refused.
//
//	rag-server ollama-exporter --ollama-url http://127.0.0.1:11434 --listen :9400 \
//	    --declared-model qwen3-rag --declared-model nomic-embed-rag
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("rag-server "+Command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	ollamaURL := fs.String("ollama-url", envOr("OLLAMA_EXPORTER_OLLAMA_URL", "http://127.0.0.1:11434"), "Ollama's base URL (env OLLAMA_EXPORTER_OLLAMA_URL)")
	listen := fs.String("listen", envOr("OLLAMA_EXPORTER_LISTEN", DefaultListen), "address serving /metrics and /healthz (env OLLAMA_EXPORTER_LISTEN)")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on one scrape's calls to Ollama; keep it under Prometheus's scrape timeout")
	var declared listFlag
	_ = declared.Set(os.Getenv("OLLAMA_EXPORTER_DECLARED_MODELS"))
	fs.Var(&declared, "declared-model", "a model the appliance declares (repeatable, or comma-separated; env OLLAMA_EXPORTER_DECLARED_MODELS adds to them): exported as ollama_model_declared so an alert can tell when it is not loaded")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "--timeout must be positive")
		return 2
	}
	base, err := parseBase(*ollamaURL)
	if err != nil {
		fmt.Fprintf(stderr, "--ollama-url: %v\n", err)
		return 2
	}
	*ollamaURL = base
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	c, err := New(Options{URL: *ollamaURL, Timeout: *timeout, Declared: declared})
	if err != nil {
		fmt.Fprintf(stderr, "--ollama-url: %v\n", err)
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// A few Prometheus replicas may scrape at once; more would only pile up calls on a
		// stuck Ollama.
		MaxRequestsInFlight: 4,
	}))
	// /healthz says the exporter runs, not that Ollama does (that is ollama_up): a liveness
	// probe must not restart the sidecar because Ollama is down.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("Failed to listen", "addr", *listen, "error", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: *timeout + 10*time.Second}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("Serving Ollama metrics", "addr", ln.Addr().String(), "ollama", *ollamaURL, "declared", []string(declared))
	select {
	case err := <-errc:
		log.Error("Server failed", "error", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("Shutdown", "error", err)
	}
	return 0
}

func parseBase(s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return "", fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	if len(s) <= len("https://") {
		return "", fmt.Errorf("%q: no host", s)
	}
	return s, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// listFlag collects a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

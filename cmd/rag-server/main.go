// Command rag-server is the Go RAG server: it ingests documents into a vector store through
// Ollama embeddings and stays responsive while doing it (see internal/ingest, internal/llm).
//
//	rag-server --config /etc/rag-server/config.json
//	rag-server --insecure-no-auth          # no file: every field defaulted (docs/rag-server-config.md)
//	rag-server ollama-exporter --ollama-url http://127.0.0.1:11434 --listen :9400
//	                                       # Prometheus metrics for one Ollama (internal/ollamaexporter)
//
// The config file is the one the operator renders (internal/serverconfig); RAG_CONFIG names it
// when --config is not given. Fields it leaves out keep their defaults; env and flags apply
// over it before it is validated. Exit status 2 means the config or flags were refused.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/ragstack/rag-operator/internal/ollamaexporter"
	"github.com/ragstack/rag-operator/internal/serverconfig"
)

func main() {
	// The exporter ships in this binary so the Ollama pod's sidecar reuses the rag-server image.
	if len(os.Args) > 1 && os.Args[1] == ollamaexporter.Command {
		os.Exit(ollamaexporter.Main(context.Background(), os.Args[2:], os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == pdfCompileCommand {
		os.Exit(pdfCompileMain(context.Background(), os.Args[2:], os.Stderr))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("rag-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("RAG_CONFIG"), "config file (env RAG_CONFIG); when neither is given, "+systemConfig+
		" if it exists, else every field takes its default (docs/rag-server-config.md)")
	listen := fs.String("listen", os.Getenv("RAG_LISTEN"), "listen address, overriding the config's listen (env RAG_LISTEN)")
	metricsListen := fs.String("metrics-listen", os.Getenv("RAG_METRICS_LISTEN"), "address serving only /metrics and /healthz without a key, overriding the config's metricsListen (env RAG_METRICS_LISTEN)")
	dataDir := fs.String("data-dir", os.Getenv("RAG_DATA_DIR"), "data directory, overriding the config's dataDir (env RAG_DATA_DIR)")
	ollamaURL := fs.String("ollama-url", os.Getenv("RAG_OLLAMA_URL"), "Ollama's URL, overriding the config's ollama.url and ollama.urls (env RAG_OLLAMA_URL)")
	keysFile := fs.String("keys-file", os.Getenv("RAG_KEYS_FILE"), "API keys file, overriding the config's auth.keysFile (env RAG_KEYS_FILE)")
	var o options
	fs.BoolVar(&o.insecureNoAuth, "insecure-no-auth", false, "accept every request as an admin, without API keys (local use only)")
	fs.BoolVar(&o.enrich, "enrich", true, "summarise and auto-tag documents after ingest (background lane)")
	fs.DurationVar(&o.keysReload, "keys-reload-interval", 10*time.Second, "how often the API keys file is checked for changes")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	fs.DurationVar(&o.probeInterval, "probe-interval", 5*time.Second, "how often /readyz's dependency probes run")
	fs.DurationVar(&o.sloProbeInterval, "slo-probe-interval", time.Second, "how often the server probes its own /healthz for the latency objective (rag_slo_healthz_p99_seconds)")
	fs.IntVar(&o.preemptBackground, "preempt-background", 8, "cut a running summary or tag step when a question arrives and run it again after the answer's first token, at most this many times per step; 0 turns it off (docs/rag-server.md)")
	fs.DurationVar(&o.questionWindow, "question-window", 30*time.Second, "while questions are asked (one waits for its first token, or the last was answered less than this long ago), summaries and tags run one at a time per Ollama server; 0 turns it off (docs/rag-server.md)")
	fs.IntVar(&o.answerCacheSize, "answer-cache-size", 0, "answers kept in the exact-question answer cache, emptied whenever the knowledge base changes; 0 turns it off")
	fs.DurationVar(&o.storeLease, "store-lease", 30*time.Second, "with database.driver postgres: how long a document claimed by a replica that died waits before another replica takes it")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpu-profile", "", "write a Go CPU profile of the whole run to this file at shutdown (diagnostics)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "--log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "invalid config: %v\n", err)
		return 2
	}
	for _, o := range []struct{ flag, dst *string }{{listen, &cfg.Listen}, {metricsListen, &cfg.MetricsListen}, {dataDir, &cfg.DataDir}, {ollamaURL, &cfg.Ollama.URL}, {keysFile, &cfg.Auth.KeysFile}} {
		if *o.flag != "" {
			*o.dst = *o.flag
		}
	}
	if *ollamaURL != "" {
		cfg.Ollama.URLs = nil // the one URL asked for replaces a pool too
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "invalid config (file, then env and flags applied): %v\n", err)
		return 2
	}
	if o.keysReload <= 0 || o.shutdownTimeout <= 0 || o.probeInterval <= 0 || o.sloProbeInterval <= 0 {
		fmt.Fprintln(stderr, "--keys-reload-interval, --shutdown-timeout, --probe-interval and --slo-probe-interval must be positive")
		return 2
	}
	if o.storeLease < time.Second {
		fmt.Fprintln(stderr, "--store-lease must be at least 1s (it is renewed every third)")
		return 2
	}
	if o.answerCacheSize < 0 || o.preemptBackground < 0 || o.questionWindow < 0 {
		fmt.Fprintln(stderr, "--answer-cache-size, --preempt-background and --question-window must be 0 (off) or more")
		return 2
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "--cpu-profile: %v\n", err)
			return 2
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "--cpu-profile: %v\n", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	a, err := newApp(ctx, cfg, o, log)
	if err != nil {
		fmt.Fprintf(stderr, "invalid config: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		a.close()
		log.Error("Failed to listen", "addr", cfg.Listen, "error", err)
		return 1
	}
	var metricsLn net.Listener
	if cfg.MetricsListen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			ln.Close()
			a.close()
			log.Error("Failed to listen for metrics", "addr", cfg.MetricsListen, "error", err)
			return 1
		}
	}
	if err := a.serve(ctx, ln, metricsLn); err != nil {
		log.Error("Server failed", "error", err)
		return 1
	}
	return 0
}

// systemConfig is read when neither --config nor RAG_CONFIG names a file.
const systemConfig = "/etc/rag-server/config.json"

// loadConfig reads path over serverconfig.Default (a field the file leaves out keeps its
// default); path "" reads systemConfig when it exists and is the defaults otherwise. It does
// not validate: flags and env apply first.
func loadConfig(path string) (serverconfig.Config, error) {
	if path == "" {
		if _, err := os.Stat(systemConfig); err != nil {
			return serverconfig.Default(), nil
		}
		path = systemConfig
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return serverconfig.Config{}, err
	}
	cfg, err := serverconfig.Decode(serverconfig.Default(), data)
	if err != nil {
		return serverconfig.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Command rag-server is the Go RAG server: it ingests documents into a vector store through
// Ollama embeddings and stays responsive while doing it (see internal/ingest, internal/llm).
//
//	rag-server --config /etc/rag-server/config.json
//
// The config file is the one the operator renders (internal/serverconfig); RAG_CONFIG names it
// when --config is not given. Exit status 2 means the config or flags were refused.
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

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("rag-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultConfig := os.Getenv("RAG_CONFIG")
	if defaultConfig == "" {
		defaultConfig = "/etc/rag-server/config.json"
	}
	configPath := fs.String("config", defaultConfig, "config file (env RAG_CONFIG)")
	listen := fs.String("listen", "", "listen address, overriding the config's listen")
	dataDir := fs.String("data-dir", "", "data directory, overriding the config's dataDir")
	var o options
	fs.BoolVar(&o.insecureNoAuth, "insecure-no-auth", false, "accept every request as an admin, without API keys (local use only)")
	fs.BoolVar(&o.enrich, "enrich", true, "summarise and auto-tag documents after ingest (background lane)")
	fs.DurationVar(&o.keysReload, "keys-reload-interval", 10*time.Second, "how often the API keys file is checked for changes")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	fs.DurationVar(&o.probeInterval, "probe-interval", 5*time.Second, "how often /readyz's dependency probes run")
	fs.IntVar(&o.answerCacheSize, "answer-cache-size", 0, "answers kept in the exact-question answer cache, emptied whenever the knowledge base changes; 0 turns it off")
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

	cfg, err := serverconfig.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "invalid config: %v\n", err)
		return 2
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "invalid config after flags: %v\n", err)
		return 2
	}
	if o.keysReload <= 0 || o.shutdownTimeout <= 0 || o.probeInterval <= 0 {
		fmt.Fprintln(stderr, "--keys-reload-interval, --shutdown-timeout and --probe-interval must be positive")
		return 2
	}
	if o.answerCacheSize < 0 {
		fmt.Fprintln(stderr, "--answer-cache-size must be 0 (off) or more")
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
	if err := a.serve(ctx, ln); err != nil {
		log.Error("Server failed", "error", err)
		return 1
	}
	return 0
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/modelspec"
	"github.com/ragstack/rag-operator/internal/modelsync"
)

// modelSyncMain is `manager model-sync --ollama URL[,URL…] --variant JSON`: it makes one variant
// exist as declared on every server named and exits non-zero with the reason otherwise. The reason is also written to the
// container's termination message, where the operator reads it for status.
func modelSyncMain(args []string) int {
	fs := flag.NewFlagSet("model-sync", flag.ContinueOnError)
	ollamaURL := fs.String("ollama", "http://127.0.0.1:11434", "Ollama base URL, or several comma-separated: every server of a pool gets the variant")
	variantJSON := fs.String("variant", "", `the variant: {"name":…,"from":…,"parameters":{…},"system":…,"template":…}`)
	attempts := fs.Int("pull-attempts", 5, "pull attempts before giving up")
	timeout := fs.Duration("timeout", 110*time.Minute, "overall deadline (the Job's activeDeadlineSeconds is the hard stop)")
	terminationLog := fs.String("termination-log", "/dev/termination-log", "where the failure reason is written for the operator to read (empty: nowhere)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "model-sync:", err)
		if *terminationLog != "" {
			_ = os.WriteFile(*terminationLog, []byte(err.Error()), 0o644)
		}
		return 1
	}
	var v modelspec.Variant
	if err := json.Unmarshal([]byte(*variantJSON), &v); err != nil || v.Name == "" || v.From == "" {
		return fail(fmt.Errorf("--variant must be a JSON object with name and from: %v", err))
	}
	var servers []string
	for _, raw := range strings.Split(*ollamaURL, ",") {
		if raw = strings.TrimSpace(raw); raw == "" {
			continue
		}
		if _, err := url.Parse(raw); err != nil {
			return fail(fmt.Errorf("--ollama: %w", err))
		}
		servers = append(servers, raw)
	}
	if len(servers) == 0 {
		return fail(fmt.Errorf("--ollama names no server"))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, *timeout)
	defer cancelTimeout()
	// A pool's servers are done in turn: each pulls the base into its own store, and the
	// Job succeeds only when every one has the variant as declared.
	for _, raw := range servers {
		u, _ := url.Parse(raw)
		client := api.NewClient(u, &http.Client{})
		res, err := modelsync.Sync(ctx, client, v, modelsync.Options{PullAttempts: *attempts, Log: os.Stdout})
		if err != nil {
			if len(servers) > 1 {
				err = fmt.Errorf("%s: %w", raw, err)
			}
			return fail(err)
		}
		fmt.Printf("Variant %s ready on %s: digest %s, parameters %v\n", v.Name, raw, res.Digest, modelspec.Applied(res.Parameters))
	}
	return 0
}

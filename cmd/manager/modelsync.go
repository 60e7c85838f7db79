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
	"syscall"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/modelspec"
	"github.com/ragstack/rag-operator/internal/modelsync"
)

// modelSyncMain is `manager model-sync --ollama URL --variant JSON`: it makes one variant exist
// as declared and exits non-zero with the reason otherwise. The reason is also written to the
// container's termination message, where the operator reads it for status.
func modelSyncMain(args []string) int {
	fs := flag.NewFlagSet("model-sync", flag.ContinueOnError)
	ollamaURL := fs.String("ollama", "http://127.0.0.1:11434", "Ollama base URL")
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
	u, err := url.Parse(*ollamaURL)
	if err != nil {
		return fail(fmt.Errorf("--ollama: %w", err))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, *timeout)
	defer cancelTimeout()
	client := api.NewClient(u, &http.Client{})
	res, err := modelsync.Sync(ctx, client, v, modelsync.Options{PullAttempts: *attempts, Log: os.Stdout})
	if err != nil {
		return fail(err)
	}
	fmt.Printf("Variant %s ready: digest %s, parameters %v\n", v.Name, res.Digest, modelspec.Applied(res.Parameters))
	return 0
}

// Package modelsync makes one model variant exist on an Ollama server exactly as declared:
// the base is pulled if absent (with progress and retries), the variant is created with its
// parameters, and Show must report every declared parameter. It is what the model-creation
// Jobs run (`manager model-sync`).
package modelsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/modelspec"
)

// Options tune retries; zero values take the defaults.
type Options struct {
	PullAttempts int           // default 5
	Backoff      time.Duration // first retry delay, doubled each time; default 2s
	Log          io.Writer     // progress lines; default io.Discard
}

// Result is what Ollama reports about the created variant.
type Result struct {
	Digest     string
	Parameters map[string][]string
}

// ErrRegistryUnreachable marks a pull that failed because the model registry cannot be reached.
var ErrRegistryUnreachable = errors.New("model registry unreachable")

// Sync ensures the base model is present, creates the variant and verifies it.
func Sync(ctx context.Context, c *api.Client, v modelspec.Variant, opts Options) (Result, error) {
	if opts.PullAttempts <= 0 {
		opts.PullAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if err := modelspec.ValidateNames(v.Parameters); err != nil {
		return Result{}, fmt.Errorf("%s: %w", v.Name, err)
	}
	if err := ensureBase(ctx, c, v.From, opts); err != nil {
		return Result{}, err
	}
	fmt.Fprintf(opts.Log, "Creating %s from %s with %v\n", v.Name, v.From, v.Parameters)
	stream := false
	err := c.Create(ctx, &api.CreateRequest{
		Model: v.Name, From: v.From, Parameters: v.Parameters, System: v.System, Template: v.Template, Stream: &stream,
	}, func(p api.ProgressResponse) error { return nil })
	if err != nil {
		return Result{}, fmt.Errorf("create %s from %s: %w", v.Name, v.From, err)
	}
	return Verify(ctx, c, v)
}

// API is what Verify needs: the operator passes its own (interface-typed) Ollama client.
type API interface {
	Show(ctx context.Context, req *api.ShowRequest) (*api.ShowResponse, error)
	List(ctx context.Context) (*api.ListResponse, error)
}

// Verify checks the variant exists with every declared parameter and returns its digest.
func Verify(ctx context.Context, c API, v modelspec.Variant) (Result, error) {
	show, err := c.Show(ctx, &api.ShowRequest{Model: v.Name})
	if err != nil {
		return Result{}, fmt.Errorf("show %s: %w", v.Name, err)
	}
	shown := modelspec.ParseShown(show.Parameters)
	if err := modelspec.Verify(v.Parameters, shown); err != nil {
		return Result{Parameters: shown}, fmt.Errorf("%s: %w", v.Name, err)
	}
	if v.System != "" && strings.TrimSpace(show.System) != strings.TrimSpace(v.System) {
		return Result{Parameters: shown}, fmt.Errorf("%s: system prompt differs from the spec", v.Name)
	}
	if v.Template != "" && strings.TrimSpace(show.Template) != strings.TrimSpace(v.Template) {
		return Result{Parameters: shown}, fmt.Errorf("%s: template differs from the spec", v.Name)
	}
	digest, err := Digest(ctx, c, v.Name)
	if err != nil {
		return Result{Parameters: shown}, err
	}
	return Result{Digest: digest, Parameters: shown}, nil
}

// Digest is the model's manifest digest as /api/tags lists it ("" when absent).
func Digest(ctx context.Context, c API, name string) (string, error) {
	list, err := c.List(ctx)
	if err != nil {
		return "", fmt.Errorf("list models: %w", err)
	}
	for _, m := range list.Models {
		if SameModel(m.Name, name) || SameModel(m.Model, name) {
			return m.Digest, nil
		}
	}
	return "", nil
}

// SameModel compares names the way Ollama does: a missing tag is ":latest".
func SameModel(a, b string) bool {
	return NormalName(a) == NormalName(b)
}

// NormalName is a model name as Ollama stores it: lower-cased, with the tag ":latest" when
// none is given (Ollama lists "Qwen3-RAG" as "qwen3-rag:latest").
func NormalName(s string) string {
	s = strings.ToLower(s)
	if !strings.Contains(s[strings.LastIndex(s, "/")+1:], ":") {
		return s + ":latest"
	}
	return s
}

func ensureBase(ctx context.Context, c *api.Client, from string, opts Options) error {
	if _, err := c.Show(ctx, &api.ShowRequest{Model: from}); err == nil {
		fmt.Fprintf(opts.Log, "Base %s is present\n", from)
		return nil
	} else if !isNotFound(err) {
		return fmt.Errorf("show %s: %w", from, err)
	}
	delay := opts.Backoff
	var last error
	for attempt := 1; attempt <= opts.PullAttempts; attempt++ {
		fmt.Fprintf(opts.Log, "Pulling %s (attempt %d of %d)\n", from, attempt, opts.PullAttempts)
		last = pull(ctx, c, from, opts.Log)
		if last == nil {
			return nil
		}
		fmt.Fprintf(opts.Log, "Pull failed: %v\n", last)
		if attempt == opts.PullAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
	if unreachable(last) {
		return fmt.Errorf("pull %s: %w after %d attempts (%v): allow the Ollama pod egress to its registry, or load the model into the model store beforehand",
			from, ErrRegistryUnreachable, opts.PullAttempts, last)
	}
	return fmt.Errorf("pull %s failed after %d attempts: %w", from, opts.PullAttempts, last)
}

// pull logs progress at most every 10% per layer, so Job logs stay readable.
func pull(ctx context.Context, c *api.Client, name string, log io.Writer) error {
	lastPct := map[string]int64{}
	return c.Pull(ctx, &api.PullRequest{Model: name}, func(p api.ProgressResponse) error {
		if p.Total <= 0 {
			fmt.Fprintf(log, "  %s\n", p.Status)
			return nil
		}
		pct := p.Completed * 100 / p.Total
		if pct/10 != lastPct[p.Digest]/10 || pct == 100 && lastPct[p.Digest] != 100 {
			fmt.Fprintf(log, "  %s %d%% of %d MB\n", p.Status, pct, p.Total>>20)
			lastPct[p.Digest] = pct
		}
		return nil
	})
}

func isNotFound(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.StatusCode == http.StatusNotFound
	}
	return strings.Contains(err.Error(), "not found")
}

func unreachable(err error) bool {
	if err == nil {
		return false
	}
	s := strings.ToLower(err.Error())
	for _, marker := range []string{"no such host", "dial tcp", "connection refused", "i/o timeout", "network is unreachable", "server misbehaving", "tls handshake"} {
		if strings.Contains(s, marker) {
			return true
		}
	}
	return false
}

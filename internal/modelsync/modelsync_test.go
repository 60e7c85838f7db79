package modelsync

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/modelspec"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// Against the real Ollama built by hack/build-ollama.sh, with generated tiny base models
// under the production names.
func TestSyncAgainstRealOllama(t *testing.T) {
	if testing.Short() {
		t.Skip("real Ollama skipped in -short mode")
	}
	srv := ollamatest.Start(t, ollamatest.Options{})
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ollamatest.CreateBaseModel(ctx, c, ollamatest.ChatModel); err != nil {
		t.Fatal(err)
	}
	variant := modelspec.Variant{Name: "qwen3-rag", From: ollamatest.ChatModel,
		Parameters: map[string]any{"num_ctx": 8192, "num_thread": 2, "temperature": 0.0}}

	t.Run("created and verified", func(t *testing.T) {
		var log bytes.Buffer
		res, err := Sync(ctx, c, variant, Options{Log: &log})
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		if !strings.HasPrefix(res.Digest, "") || res.Digest == "" || res.Parameters["num_ctx"][0] != "8192" {
			t.Fatalf("result %+v", res)
		}
		if !strings.Contains(log.String(), "Base qwen3:8b is present") {
			t.Errorf("log does not say the base was found:\n%s", log.String())
		}
		// The context window takes effect when the model loads.
		stream := false
		if err := c.Generate(ctx, &api.GenerateRequest{Model: "qwen3-rag", Prompt: "hi", Stream: &stream,
			Options: map[string]any{"num_predict": 1}}, func(api.GenerateResponse) error { return nil }); err != nil {
			t.Fatal(err)
		}
		ps, err := c.ListRunning(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range ps.Models {
			if strings.HasPrefix(m.Name, "qwen3-rag") {
				found = true
				if m.ContextLength != 8192 {
					t.Errorf("/api/ps context_length = %d, want 8192", m.ContextLength)
				}
			}
		}
		if !found {
			t.Errorf("qwen3-rag not loaded: %+v", ps.Models)
		}
	})

	t.Run("idempotent", func(t *testing.T) {
		first, err := Verify(ctx, c, variant)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Sync(ctx, c, variant, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if again.Digest != first.Digest {
			t.Errorf("re-run changed the digest %s → %s", first.Digest, again.Digest)
		}
	})

	t.Run("changed parameter is detected", func(t *testing.T) {
		changed := variant
		changed.Parameters = map[string]any{"num_ctx": 4096, "num_thread": 2, "temperature": 0.0}
		_, err := Verify(ctx, c, changed)
		if err == nil || !strings.Contains(err.Error(), "num_ctx = 8192, declared 4096") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("missing base with no registry", func(t *testing.T) {
		_, err := Sync(ctx, c, modelspec.Variant{Name: "x-rag", From: "qwen3:999b", Parameters: map[string]any{"num_ctx": 512}},
			Options{PullAttempts: 2, Backoff: 10 * time.Millisecond})
		if !errors.Is(err, ErrRegistryUnreachable) || !strings.Contains(err.Error(), "qwen3:999b") {
			t.Fatalf("want a clear registry-unreachable error naming the model, got %v", err)
		}
	})

	t.Run("unknown parameter", func(t *testing.T) {
		_, err := Sync(ctx, c, modelspec.Variant{Name: "bad-rag", From: ollamatest.ChatModel, Parameters: map[string]any{"num_ctxx": 512}}, Options{})
		if err == nil || !strings.Contains(err.Error(), "num_ctxx") {
			t.Fatalf("want an error naming num_ctxx, got %v", err)
		}
	})
}

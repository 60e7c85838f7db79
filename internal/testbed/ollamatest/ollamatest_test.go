package ollamatest

import (
	"context"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
)

// One server for most checks keeps the run short: starting is fast, loading models is not.
func TestRealOllama(t *testing.T) {
	s := StartWithModels(t, Options{})
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("version", func(t *testing.T) {
		v, err := c.Version(ctx)
		if err != nil || v != Version {
			t.Fatalf("version %q, %v; want %s", v, err, Version)
		}
	})

	t.Run("models listed", func(t *testing.T) {
		list, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, m := range list.Models {
			got[m.Name] = true
		}
		for _, want := range []string{ChatModel, EmbedModel + ":latest", ReasoningModel} {
			if !got[want] {
				t.Errorf("%s not listed; have %v", want, got)
			}
		}
	})

	t.Run("chat thinks then answers", func(t *testing.T) {
		resp := chat(ctx, t, c, ChatModel, nil)
		if resp.Message.Thinking == "" || strings.TrimSpace(resp.Message.Content) == "" {
			t.Errorf("thinking %q, content %q: want both", resp.Message.Thinking, resp.Message.Content)
		}
	})

	t.Run("chat think=false answers directly", func(t *testing.T) {
		resp := chat(ctx, t, c, ChatModel, &api.ThinkValue{Value: false})
		if resp.Message.Thinking != "" || strings.TrimSpace(resp.Message.Content) == "" {
			t.Errorf("thinking %q, content %q: want content only", resp.Message.Thinking, resp.Message.Content)
		}
	})

	t.Run("deepseek chat", func(t *testing.T) {
		resp := chat(ctx, t, c, ReasoningModel, nil)
		if resp.Message.Thinking == "" || strings.TrimSpace(resp.Message.Content) == "" {
			t.Errorf("thinking %q, content %q: want both", resp.Message.Thinking, resp.Message.Content)
		}
		resp = chat(ctx, t, c, ReasoningModel, &api.ThinkValue{Value: false})
		if resp.Message.Thinking != "" || strings.TrimSpace(resp.Message.Content) == "" {
			t.Errorf("thinking %q, content %q: want content only", resp.Message.Thinking, resp.Message.Content)
		}
	})

	t.Run("embed batch", func(t *testing.T) {
		inputs := []string{
			"the river runs through the green valley",
			"the river runs through the deep forest",
			"the server retries a request after an error",
			"a single word",
			"Ünïcödé and 123 numbers!",
		}
		resp, err := c.Embed(ctx, &api.EmbedRequest{Model: EmbedModel, Input: inputs})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Embeddings) != len(inputs) {
			t.Fatalf("%d vectors for %d inputs", len(resp.Embeddings), len(inputs))
		}
		for i, v := range resp.Embeddings {
			if len(v) != EmbedDim {
				t.Errorf("vector %d has %d dimensions, want %d", i, len(v), EmbedDim)
			}
			if n := norm(v); math.Abs(n-1) > 1e-3 {
				t.Errorf("vector %d has norm %g, want 1", i, n)
			}
		}
		// Close to a bag of words: sharing words means closer vectors.
		near, far := dot(resp.Embeddings[0], resp.Embeddings[1]), dot(resp.Embeddings[0], resp.Embeddings[2])
		if near <= far {
			t.Errorf("cosine(similar) %.3f <= cosine(unrelated) %.3f", near, far)
		}
		again, err := c.Embed(ctx, &api.EmbedRequest{Model: EmbedModel, Input: inputs[0]})
		if err != nil {
			t.Fatal(err)
		}
		if d := dot(again.Embeddings[0], resp.Embeddings[0]); d < 0.9999 {
			t.Errorf("same input embedded alone: cosine %.5f to batched, want 1", d)
		}
	})

	t.Run("embed on chat model is not implemented", func(t *testing.T) {
		_, err := c.Embed(ctx, &api.EmbedRequest{Model: ChatModel, Input: "hello"})
		if !IsStatus(err, http.StatusNotImplemented) {
			t.Errorf("embed on %s: %v, want HTTP 501", ChatModel, err)
		}
	})

	t.Run("chat on embedding model fails", func(t *testing.T) {
		stream := false
		err := c.Chat(ctx, &api.ChatRequest{Model: EmbedModel, Stream: &stream,
			Messages: []api.Message{{Role: "user", Content: "hi"}}}, func(api.ChatResponse) error { return nil })
		if !IsStatus(err, http.StatusBadRequest) {
			t.Errorf("chat on %s: %v, want HTTP 400", EmbedModel, err)
		}
	})

	t.Run("embed on llama model", func(t *testing.T) {
		resp, err := c.Embed(ctx, &api.EmbedRequest{Model: ReasoningModel, Input: []string{"one", "two words"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Embeddings) != 2 || len(resp.Embeddings[0]) == 0 {
			t.Errorf("got %d vectors", len(resp.Embeddings))
		}
	})

	t.Run("variant with num_ctx", func(t *testing.T) {
		const variant = "qwen3-rag"
		stream := false
		err := c.Create(ctx, &api.CreateRequest{Model: variant, From: ChatModel, Stream: &stream,
			Parameters: map[string]any{"num_ctx": 8192, "num_thread": 2}},
			func(api.ProgressResponse) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		show, err := c.Show(ctx, &api.ShowRequest{Model: variant})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"num_ctx", "8192", "num_thread", "stop"} {
			if !strings.Contains(show.Parameters, want) {
				t.Errorf("show parameters %q lack %q", show.Parameters, want)
			}
		}
		think := false
		err = c.Generate(ctx, &api.GenerateRequest{Model: variant, Prompt: "hello", Stream: &stream,
			Think: &api.ThinkValue{Value: think}, Options: map[string]any{"temperature": 0}},
			func(r api.GenerateResponse) error {
				if r.Done && r.DoneReason != "stop" {
					t.Errorf("done_reason %q", r.DoneReason)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		ps, err := c.ListRunning(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range ps.Models {
			if strings.HasPrefix(m.Name, variant) {
				found = true
				if m.ContextLength != 8192 {
					t.Errorf("%s runs with context_length %d, want 8192", m.Name, m.ContextLength)
				}
			}
		}
		if !found {
			t.Errorf("%s not in /api/ps: %+v", variant, ps.Models)
		}
	})

	t.Run("kill, then restart keeps models", func(t *testing.T) {
		s.Kill()
		if s.Running() {
			t.Fatal("server still running after Kill")
		}
		if _, err := c.Version(ctx); err == nil {
			t.Fatal("killed server still answers")
		}
		s.Restart()
		resp := chat(ctx, t, c, ChatModel, &api.ThinkValue{Value: false})
		if resp.Message.Content == "" {
			t.Error("no answer after restart")
		}
	})
}

func TestEnvReachesServer(t *testing.T) {
	s := Start(t, Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "3", "OLLAMA_MAX_QUEUE": "2"}})
	s.Stop()
	log, err := os.ReadFile(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"OLLAMA_NUM_PARALLEL:3", "OLLAMA_MAX_QUEUE:2", "OLLAMA_NO_CLOUD:true", "OLLAMA_MODELS:" + s.ModelsDir} {
		if !strings.Contains(string(log), want) {
			t.Errorf("server config lacks %s", want)
		}
	}
}

func TestMissingBinarySkips(t *testing.T) {
	t.Setenv("OLLAMA_BIN", "/nonexistent/ollama")
	t.Setenv(RequireEnv, "")
	skipped := false
	ft := &fakeTB{TB: t, onSkip: func() { skipped = true }}
	func() {
		defer func() { _ = recover() }()
		Start(ft, Options{})
	}()
	if !skipped {
		t.Error("Start did not skip without a binary")
	}
}

// fakeTB turns Skip into a recorded panic so the skip path can be tested.
type fakeTB struct {
	testing.TB
	onSkip func()
}

func (f *fakeTB) Skipf(string, ...any) { f.onSkip(); panic("skip") }

// chat sends one user message at temperature 0 and checks the reply's structure.
func chat(ctx context.Context, t *testing.T, c *api.Client, model string, think *api.ThinkValue) api.ChatResponse {
	t.Helper()
	stream := false
	var resp api.ChatResponse
	err := c.Chat(ctx, &api.ChatRequest{
		Model:    model,
		Stream:   &stream,
		Think:    think,
		Options:  map[string]any{"temperature": 0, "seed": 1},
		Messages: []api.Message{{Role: "user", Content: "What is the river near the town?"}},
	}, func(r api.ChatResponse) error { resp = r; return nil })
	if err != nil {
		t.Fatalf("chat %s: %v", model, err)
	}
	if !resp.Done || resp.DoneReason != "stop" || resp.Message.Role != "assistant" || resp.EvalCount == 0 {
		t.Errorf("chat %s: done=%v done_reason=%q role=%q eval_count=%d", model, resp.Done, resp.DoneReason,
			resp.Message.Role, resp.EvalCount)
	}
	t.Logf("%s: thinking %q content %q (%d tokens)", model, resp.Message.Thinking, resp.Message.Content, resp.EvalCount)
	return resp
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func norm(v []float32) float64 { return math.Sqrt(dot(v, v)) }

package llm

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// The client against a real Ollama (built by hack/build-ollama.sh; skipped without it unless
// RAG_REQUIRE_OLLAMA=1) serving tiny generated models under the production names. Outputs are
// gibberish: the checks are on structure, counts, dimensions and done reasons.
func TestRealOllama(t *testing.T) {
	srv := ollamatest.Start(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := ollamatest.CreateBaseModels(ctx, srv.Client()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	const batch = 16
	c := New(Options{BaseURL: srv.URL, NumParallel: 2, BackgroundMax: 1, EmbedBatchSize: batch, BackgroundCallTarget: -1, // batches by count here; the pace has its own tests
		EmbedDimension: ollamatest.EmbedDim, KeepAlive: -1, Metrics: reg})

	t.Run("ping", func(t *testing.T) {
		if v, err := c.Version(ctx); err != nil || v != ollamatest.Version {
			t.Fatalf("version %q, %v", v, err)
		}
	})

	t.Run("embed 100 texts in batches", func(t *testing.T) {
		in := make([]string, 100)
		for i := range in {
			in[i] = "chunk " + strings.Repeat("word ", i%7+1) + string(rune('a'+i%26))
		}
		before := embedCalls(t, reg)
		vecs, err := c.Embed(ctx, Background, ollamatest.EmbedModel, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(vecs) != 100 {
			t.Fatalf("%d vectors", len(vecs))
		}
		for i, v := range vecs {
			if len(v) != 768 {
				t.Fatalf("vector %d has %d dimensions, want 768", i, len(v))
			}
			var norm float64
			for _, x := range v {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("vector %d is not finite", i)
				}
				norm += float64(x) * float64(x)
			}
			if norm == 0 {
				t.Fatalf("vector %d is zero", i)
			}
		}
		if got, want := embedCalls(t, reg)-before, uint64((100+batch-1)/batch); got != want {
			t.Errorf("%d /api/embed calls, want ceil(100/%d) = %d", got, batch, want)
		}
		// Same text, same vector: results are in input order, not completion order.
		again, err := c.Embed(ctx, Interactive, ollamatest.EmbedModel, []string{in[57]})
		if err != nil {
			t.Fatal(err)
		}
		for j := range again[0] {
			if math.Abs(float64(again[0][j]-vecs[57][j])) > 1e-4 {
				t.Fatalf("text 57 embedded alone differs at %d: results out of order?", j)
			}
		}
	})

	// The seed's failure: a query while a big ingest runs. Background holds one of the two embed
	// slots, so the query goes out at once and Ollama runs it next, long before the ingest ends.
	t.Run("query embedding during ingest", func(t *testing.T) {
		in := make([]string, 20*batch)
		for i := range in {
			in[i] = "ingest chunk number " + strings.Repeat("x", i%13+1)
		}
		ingest := make(chan error, 1)
		go func() {
			_, err := c.Embed(ctx, Background, ollamatest.EmbedModel, in)
			ingest <- err
		}()
		waitGate(t, c.embed, func(s gateState) bool { return s.InFlight[Background] == 1 })
		start := time.Now()
		if _, err := c.Embed(ctx, Interactive, ollamatest.EmbedModel, []string{"the question"}); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		select {
		case err := <-ingest:
			t.Fatalf("ingest of 20 batches finished (%v) before the query did", err)
		default:
		}
		if err := <-ingest; err != nil {
			t.Fatal(err)
		}
		t.Logf("query embedding during ingest: %v (ingest: 20 batches of %d)", took, batch)
	})

	t.Run("chat streams tokens", func(t *testing.T) {
		think := false
		var toks []string
		res, err := c.Chat(ctx, Interactive, ChatRequest{
			Model:     ollamatest.ChatModel,
			Messages:  []Message{{Role: "system", Content: "Answer briefly."}, {Role: "user", Content: "What is a vector?"}},
			MaxTokens: 24, Think: &think,
			Options: map[string]any{"temperature": 0, "seed": 1},
			OnToken: func(s string) error { toks = append(toks, s); return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) == 0 || strings.Join(toks, "") != res.Content {
			t.Fatalf("%d tokens %q, content %q", len(toks), toks, res.Content)
		}
		if res.DoneReason != "stop" && res.DoneReason != "length" {
			t.Errorf("done_reason %q", res.DoneReason)
		}
		if res.GeneratedTokens < 1 || res.GeneratedTokens > 24 || res.PromptTokens < 1 {
			t.Errorf("counts prompt %d generated %d (num_predict 24)", res.PromptTokens, res.GeneratedTokens)
		}
		if res.Thinking != "" {
			t.Errorf("think=false still thought %q", res.Thinking)
		}
	})

	t.Run("background chat with thinking", func(t *testing.T) {
		res, err := c.Chat(ctx, Background, ChatRequest{
			Model: ollamatest.ChatModel, Messages: []Message{{Role: "user", Content: "Summarise."}},
			MaxTokens: 48, Options: map[string]any{"temperature": 0, "seed": 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Thinking == "" && res.Content == "" {
			t.Errorf("empty answer: %+v", res)
		}
	})

	t.Run("cancel mid-stream frees the slot", func(t *testing.T) {
		think := false
		// The tiny model sometimes ends its answer right after the first token, with the done
		// line already read: that answer finished before the cancel could matter. Ask again.
		var err error
		for attempt := range 5 {
			cctx, ccancel := context.WithCancel(ctx)
			var res ChatResponse
			res, err = c.Chat(cctx, Interactive, ChatRequest{
				Model: ollamatest.ChatModel, Messages: []Message{{Role: "user", Content: "Talk a lot."}},
				MaxTokens: 200, Think: &think, Options: map[string]any{"seed": attempt + 1, "temperature": 1},
				OnToken: func(string) error { ccancel(); return nil },
			})
			ccancel()
			if err == nil && res.DoneReason == "stop" && res.GeneratedTokens <= 2 {
				t.Logf("attempt %d: the answer ended after %d tokens, before the cancel", attempt, res.GeneratedTokens)
				continue
			}
			break
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		waitGate(t, c.chat, func(s gateState) bool { return s == gateState{} })
		// Ollama took the abort: the next call is served.
		if _, err := c.Chat(ctx, Interactive, ChatRequest{Model: ollamatest.ChatModel, Think: &think,
			Messages: []Message{{Role: "user", Content: "Again."}}, MaxTokens: 4}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("embedding with a chat model is refused, not retried", func(t *testing.T) {
		before := embedCalls(t, reg)
		_, err := c.Embed(ctx, Interactive, ollamatest.ChatModel, []string{"x"})
		var se *StatusError
		if !errors.As(err, &se) || se.StatusCode != http.StatusNotImplemented {
			t.Fatalf("got %v, want HTTP 501", err)
		}
		if n := embedCalls(t, reg) - before; n != 1 {
			t.Errorf("%d calls, want 1", n)
		}
	})
}

// embedCalls is the number of /api/embed calls observed by the latency histogram.
func embedCalls(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rag_llm_ollama_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == "embed" {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

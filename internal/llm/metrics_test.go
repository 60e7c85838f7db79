package llm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// sample returns the series of name whose labels include want, or nil.
func sample(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func counterOf(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	if m := sample(t, reg, name, labels); m != nil {
		return m.GetCounter().GetValue()
	}
	return 0
}

func histOf(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (count uint64, sum float64) {
	t.Helper()
	if m := sample(t, reg, name, labels); m != nil {
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}
	return 0, 0
}

// TestCallAndQueueMetrics: with one chat slot, a second call waits in the lane; the wait, the
// calls by outcome, the first-token time of the streamed call and Ollama's token counts are
// recorded per model and lane.
func TestCallAndQueueMetrics(t *testing.T) {
	f := newFakeOllama(t)
	reg := prometheus.NewRegistry()
	c := New(Options{BaseURL: f.URL(), NumParallel: 1, MaxQueueInteractive: 1, Retry: fastRetry, Metrics: reg})
	ctx := context.Background()
	interactive := map[string]string{"pool": "chat", "lane": "interactive"}

	// The first call streams (it has OnToken) and takes the only slot.
	first := make(chan chatResult, 1)
	go func() {
		r, err := c.Chat(ctx, Interactive, ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "hi"}},
			OnToken: func(string) error { return nil }})
		first <- chatResult{r, err}
	}()
	h1 := next(t, f.chats)
	second := goChat(ctx, c, Interactive, "m")
	waitGate(t, c.chat, func(s gateState) bool { return s.Queued[Interactive] == 1 })

	// The queue (1) is full: a third call is refused, a fourth that gives up is cancelled.
	if _, err := c.Chat(ctx, Interactive, ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "x"}}}); !errors.Is(err, ErrBusy) {
		t.Fatalf("third call: %v, want ErrBusy", err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Chat(gone, Interactive, ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "x"}}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}

	const held = 50 * time.Millisecond // a lower bound for the second call's measured wait
	time.Sleep(held)
	h1.Release()
	if r := result(t, first); r.err != nil {
		t.Fatal(r.err)
	}
	next(t, f.chats).Release()
	if r := result(t, second); r.err != nil {
		t.Fatal(r.err)
	}

	// Two admissions: the first at once (0), the second after the first answer.
	if n, sum := histOf(t, reg, "rag_llm_queue_wait_seconds", interactive); n != 2 || sum < held.Seconds() {
		t.Errorf("chat/interactive queue wait: %d observations, sum %.3fs; want 2, sum >= %s", n, sum, held)
	}
	if n, _ := histOf(t, reg, "rag_llm_queue_wait_seconds", map[string]string{"pool": "chat", "lane": "background"}); n != 0 {
		t.Errorf("chat/background queue wait has %d observations, want 0", n)
	}
	call := func(outcome string) map[string]string {
		return map[string]string{"op": "chat", "model": "m", "lane": "interactive", "outcome": outcome}
	}
	for outcome, want := range map[string]float64{"ok": 2, "busy": 1, "canceled": 1, "error": 0} {
		if got := counterOf(t, reg, "rag_llm_calls_total", call(outcome)); got != want {
			t.Errorf("calls with outcome %s = %v, want %v", outcome, got, want)
		}
	}
	if n, _ := histOf(t, reg, "rag_llm_call_duration_seconds", map[string]string{"op": "chat", "model": "m", "lane": "interactive"}); n != 4 {
		t.Errorf("chat call durations: %d, want 4 (every outcome)", n)
	}
	// Only the streamed call has a first token; it came after at least the held time.
	if n, sum := histOf(t, reg, "rag_llm_chat_time_to_first_token_seconds", map[string]string{"model": "m", "lane": "interactive"}); n != 1 || sum < held.Seconds() {
		t.Errorf("time to first token: %d observations, sum %.3f; want 1, >= %s", n, sum, held)
	}
	// The fake reports 7 prompt and 3 generated tokens per answer, and no eval_duration.
	if p, g := counterOf(t, reg, "rag_llm_chat_tokens_total", map[string]string{"model": "m", "kind": "prompt"}),
		counterOf(t, reg, "rag_llm_chat_tokens_total", map[string]string{"model": "m", "kind": "generated"}); p != 14 || g != 6 {
		t.Errorf("tokens: prompt %v, generated %v; want 14 and 6", p, g)
	}
	if n, _ := histOf(t, reg, "rag_llm_chat_tokens_per_second", map[string]string{"model": "m"}); n != 0 {
		t.Errorf("decode speed observed %d times without an eval_duration", n)
	}
}

// TestCallMetricsRealOllama: against the real Ollama, a streamed answer records its first-token
// time and a decode speed from Ollama's own eval timing, and embed calls are counted per model.
func TestCallMetricsRealOllama(t *testing.T) {
	srv := ollamatest.Start(t, ollamatest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, m := range []string{ollamatest.ChatModel, ollamatest.EmbedModel} {
		if err := ollamatest.CreateBaseModel(ctx, srv.Client(), m); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	c := New(Options{BaseURL: srv.URL, NumParallel: 1, Metrics: reg})
	think := false
	res, err := c.Chat(ctx, Interactive, ChatRequest{Model: ollamatest.ChatModel, MaxTokens: 16, Think: &think,
		Messages: []Message{{Role: "user", Content: "hello"}}, OnToken: func(string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if res.GeneratedTokens < 1 || res.EvalDuration <= 0 {
		t.Fatalf("answer: %d tokens in %s", res.GeneratedTokens, res.EvalDuration)
	}
	labels := map[string]string{"model": ollamatest.ChatModel, "lane": "interactive"}
	if n, sum := histOf(t, reg, "rag_llm_chat_time_to_first_token_seconds", labels); n != 1 || sum <= 0 {
		t.Errorf("time to first token: %d observations, sum %v", n, sum)
	}
	want := float64(res.GeneratedTokens) / res.EvalDuration.Seconds()
	if n, sum := histOf(t, reg, "rag_llm_chat_tokens_per_second", labels); n != 1 || sum != want {
		t.Errorf("decode speed: %d observations, sum %v; want 1, %v", n, sum, want)
	}
	if g := counterOf(t, reg, "rag_llm_chat_tokens_total", map[string]string{"model": ollamatest.ChatModel, "kind": "generated"}); g != float64(res.GeneratedTokens) {
		t.Errorf("generated tokens counted %v, answer says %d", g, res.GeneratedTokens)
	}

	if _, err := c.Embed(ctx, Background, ollamatest.EmbedModel, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	// The chat model cannot embed (501): an error outcome under its own model label.
	if _, err := c.Embed(ctx, Interactive, ollamatest.ChatModel, []string{"a"}); err == nil {
		t.Fatal("embedding with the chat model succeeded")
	}
	if ok := counterOf(t, reg, "rag_llm_calls_total", map[string]string{"op": "embed", "model": ollamatest.EmbedModel, "lane": "background", "outcome": "ok"}); ok != 1 {
		t.Errorf("embed ok calls = %v, want 1", ok)
	}
	if bad := counterOf(t, reg, "rag_llm_calls_total", map[string]string{"op": "embed", "model": ollamatest.ChatModel, "lane": "interactive", "outcome": "error"}); bad != 1 {
		t.Errorf("embed error calls = %v, want 1", bad)
	}
	if n, _ := histOf(t, reg, "rag_llm_queue_wait_seconds", map[string]string{"pool": "embed", "lane": "background"}); n != 1 {
		t.Errorf("embed/background admissions = %d, want 1 (one batch)", n)
	}
}

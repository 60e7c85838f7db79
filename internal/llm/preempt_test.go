package llm

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Preemption: an answer starting cuts a summary running at Ollama (its request is closed), the
// summary waits in its lane until the answer's first token and then runs again to a whole
// answer; a call is cut at most the configured number of times, and never without it.
func TestPreemptBackgroundChat(t *testing.T) {
	f := newFakeOllama(t)
	reg := prometheus.NewRegistry()
	c := New(Options{BaseURL: f.URL(), BackgroundMax: 1, MaxYield: time.Hour, Metrics: reg})
	c.SetPreemption(2)
	ctx := context.Background()

	summary := goChat(ctx, c, Background, "sum")
	first := next(t, f.chats)
	release := c.HoldBackground() // a question arrives
	result(t, chanOf(first.gone))
	answer := goChat(ctx, c, Interactive, "chat")
	a := next(t, f.chats)
	if a.Model != "chat" {
		t.Fatalf("after the cut %q reached Ollama, want the answer", a.Model)
	}
	waitGate(t, c.chat, func(s gateState) bool { return s.Queued[Background] == 1 && s.InFlight[Background] == 0 })
	none(t, f.chats)
	release() // the answer's first token: the summary goes again
	second := next(t, f.chats)
	if second.Model != "sum" {
		t.Fatalf("%q reached Ollama, want the summary again", second.Model)
	}
	// Cut a second time, then no more: the third answer waits for it.
	rel := c.HoldBackground()
	result(t, chanOf(second.gone))
	rel()
	third := next(t, f.chats)
	rel = c.HoldBackground()
	if !stillRunning(c) { // a cut cancels synchronously, inside HoldBackground
		t.Fatal("the summary was cut a third time; at most 2 were allowed")
	}
	rel()
	third.Release()
	a.Release()
	if r := result(t, summary); r.err != nil || r.resp.Content != "Hello, world" {
		t.Fatalf("summary after two cuts: %q, %v; want the whole answer", r.resp.Content, r.err)
	}
	if r := result(t, answer); r.err != nil {
		t.Fatal(r.err)
	}
	if n, _ := unlabelledValue(reg, "rag_llm_background_preempted_total"); n != 2 {
		t.Errorf("rag_llm_background_preempted_total %v, want 2", n)
	}
	// Cut requests ask for a non-streamed answer (Ollama 0.24 can keep a slot forever when a
	// streaming client leaves: ollama/ollama#17131); the answer streams.
	for _, b := range f.bodies() {
		if want := b["model"] == "chat"; b["stream"] != want {
			t.Errorf("%v request: stream %v, want %v", b["model"], b["stream"], want)
		}
	}

	// Preemption off: a running summary is not cut.
	c.SetPreemption(0)
	summary = goChat(ctx, c, Background, "sum")
	s := next(t, f.chats)
	rel = c.HoldBackground()
	waitGate(t, c.chat, func(s gateState) bool { return s.InFlight[Background] == 1 })
	select {
	case <-s.gone:
		t.Fatal("cut with preemption off")
	default:
	}
	rel()
	s.Release()
	if r := result(t, summary); r.err != nil {
		t.Fatal(r.err)
	}
}

// stillRunning says whether a background call is registered as running and not cut.
func stillRunning(c *Ollama) bool {
	c.preempt.mu.Lock()
	defer c.preempt.mu.Unlock()
	return len(c.preempt.running) == 1
}

// unlabelledValue is the value of a metric without labels in reg.
func unlabelledValue(reg prometheus.Gatherer, name string) (float64, bool) {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue(), true
			}
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// A step's request continues the answer so far: it is the last message, an assistant one the
// template leaves open, or it extends the caller's own assistant prefill; the caller's messages
// are never modified.
func TestContinuation(t *testing.T) {
	base := ChatRequest{Model: "m", MaxTokens: 160, Messages: []Message{{Role: "system", Content: "s"}, {Role: "user", Content: "doc"}}}
	first := continuation(base, "", 32)
	if first.MaxTokens != 32 || len(first.Messages) != 2 {
		t.Fatalf("first step: %+v", first)
	}
	next := continuation(base, "It says", 32)
	if got := next.Messages[len(next.Messages)-1]; len(next.Messages) != 3 || got != (Message{Role: "assistant", Content: "It says"}) {
		t.Fatalf("next step's messages: %+v", next.Messages)
	}
	prefilled := ChatRequest{Messages: []Message{{Role: "user", Content: "doc"}, {Role: "assistant", Content: "Summary:"}}}
	cont := continuation(prefilled, " it says", 8)
	if len(cont.Messages) != 2 || cont.Messages[1].Content != "Summary: it says" || prefilled.Messages[1].Content != "Summary:" {
		t.Fatalf("a caller's prefill continued: %+v (caller's now %+v)", cont.Messages, prefilled.Messages)
	}
	if len(base.Messages) != 2 {
		t.Fatal("the caller's messages were changed")
	}
}

// Questions back to back (holds that overlap without a break, each lapsing after MaxYield) do
// not starve summaries while answers may cut them: the lanes' yield pass still lets one through
// every MaxYield, a call granted just before a new hold goes back to wait at most as many times
// as it may be cut, and then it runs.
func TestPreemptionDoesNotStarveUnderBackToBackQuestions(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), BackgroundMax: 1, MaxYield: 100 * time.Millisecond, QuestionWindow: -1})
	c.SetPreemption(2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	questions := make(chan struct{})
	go func() { // a new question every 40 ms, each holding until the next has begun
		defer close(questions)
		release := c.HoldBackground()
		for ctx.Err() == nil {
			time.Sleep(40 * time.Millisecond)
			next := c.HoldBackground()
			release()
			release = next
		}
		release()
	}()
	summary := goChat(ctx, c, Background, "sum")
	for {
		select {
		case h := <-f.chats:
			h.Release() // cut or not, Ollama answers when released
		case r := <-summary:
			if r.err != nil {
				t.Fatalf("summary under back-to-back questions: %v", r.err)
			}
			cancel()
			<-questions
			return
		case <-time.After(20 * time.Second):
			t.Fatal("the summary never ended while questions came back to back")
		}
	}
}

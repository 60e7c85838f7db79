package llm

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
)

// Holds: while a user waits for a first token, no background call starts, in either pool;
// interactive calls are unaffected; background resumes when the last hold ends or lapses.

func TestGateHoldPausesBackgroundOnly(t *testing.T) {
	g := newGate("embed", 2, 2, 8, 8, time.Hour, nil)
	ctx := context.Background()
	relA, relB := g.hold(), g.hold()

	admitted := make(chan struct{})
	go func() {
		rel, err := g.acquire(ctx, Background, true)
		if err == nil {
			close(admitted)
			rel()
		}
	}()
	// The background newcomer queues although both slots are free.
	waitGate(t, g, func(s gateState) bool { return s.Queued[Background] == 1 && s.Holds == 2 })

	relI, err := g.acquire(ctx, Interactive, true)
	if err != nil {
		t.Fatalf("interactive call refused during a hold: %v", err)
	}
	relI()

	relA()
	relA() // idempotent: must not release B's hold
	if s, _ := g.state(); s.Holds != 1 || s.Queued[Background] != 1 {
		t.Fatalf("after one of two holds ended: %+v, want the background call still waiting", s)
	}
	relB()
	result(t, chanOf(admitted))
	waitGate(t, g, func(s gateState) bool { return s.Holds == 0 && s.InFlight == [2]int{} })
}

func TestGateHoldLapses(t *testing.T) {
	g := newGate("embed", 2, 1, 8, 8, 20*time.Millisecond, nil)
	release := g.hold()
	defer release()
	rel, err := g.acquire(context.Background(), Background, true)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	waitGate(t, g, func(s gateState) bool { return s.Holds == 0 }) // the hold lapses
	release()                                                      // after the lapse: no double decrement
	if s, _ := g.state(); s.Holds != 0 {
		t.Fatalf("holds %d after release following the lapse", s.Holds)
	}
}

// Over HTTP: a background batch queued during a hold reaches Ollama only after the hold ends,
// while a question's embedding goes straight through; background chat (summaries) waits too.
func TestHoldBackgroundOverHTTP(t *testing.T) {
	f := newFakeOllama(t)
	f.holdEmbeds = true
	c := New(Options{BaseURL: f.URL(), NumParallel: 4, BackgroundMax: 2, EmbedBatchSize: 4, EmbedConcurrency: 2, MaxYield: time.Hour})
	release := c.HoldBackground()

	ingest := make(chan error, 1)
	go func() {
		_, err := c.Embed(context.Background(), Background, "e", texts(4))
		ingest <- err
	}()
	summary := goChat(context.Background(), c, Background, "m")
	waitGate(t, c.embed, func(s gateState) bool { return s.Queued[Background] == 1 })
	waitGate(t, c.chat, func(s gateState) bool { return s.Queued[Background] == 1 })

	query := make(chan error, 1)
	go func() {
		_, err := c.Embed(context.Background(), Interactive, "e", []string{"t999"})
		query <- err
	}()
	q := next(t, f.embeds)
	if len(q.Inputs) != 1 || q.Inputs[0] != "t999" {
		t.Fatalf("first call to reach Ollama: %v, want the question", q.Inputs)
	}
	q.Release()
	if err := result(t, query); err != nil {
		t.Fatal(err)
	}
	none(t, f.embeds)
	none(t, f.chats)
	if got := value(t, c.metrics.holds); got != 1 {
		t.Errorf("holds gauge %v during the hold", got)
	}

	release()
	next(t, f.embeds).Release()
	next(t, f.chats).Release()
	if err := result(t, ingest); err != nil {
		t.Fatal(err)
	}
	if r := result(t, summary); r.err != nil {
		t.Fatal(r.err)
	}
	if got := value(t, c.metrics.holds); got != 0 {
		t.Errorf("holds gauge %v after release", got)
	}
}

func TestHoldBackgroundDisabled(t *testing.T) {
	c := New(Options{BaseURL: "http://127.0.0.1:1", MaxYield: -1})
	release := c.HoldBackground()
	defer release()
	if s, _ := c.embed.state(); s.Holds != 0 {
		t.Fatalf("MaxYield < 0 still holds: %+v", s)
	}
}

func TestEmbedPaceBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		perText time.Duration
		target  time.Duration
		want    int
	}{
		{"nothing measured yet: a small probe batch", 0, 250 * time.Millisecond, probeBatch},
		{"GPU-fast: capped at the batch size", time.Millisecond, 250 * time.Millisecond, 32},
		{"CPU: what fits the target", 36 * time.Millisecond, 250 * time.Millisecond, 6},
		{"slower than the target: one text", time.Second, 250 * time.Millisecond, 1},
		{"target off", 36 * time.Millisecond, -1, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := embedPace{perText: tc.perText}
			if got := p.batch(tc.target, 32); got != tc.want {
				t.Errorf("batch = %d, want %d", got, tc.want)
			}
		})
	}
	var p embedPace
	p.observe(10, time.Second)
	p.observe(10, 500*time.Millisecond)
	if p.perText != 87500*time.Microsecond { // (3×100ms + 50ms) / 4
		t.Errorf("moving estimate %s, want 87.5ms", p.perText)
	}
}

// Background batches follow the measured pace; a question's embedding is never split.
func TestEmbedBackgroundBatchesSizedByPace(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 32, BackgroundCallTarget: 100 * time.Millisecond})
	c.pace.perText = 20 * time.Millisecond // as if measured: 5 texts per 100 ms
	if _, err := c.Embed(context.Background(), Background, "e", texts(12)); err != nil {
		t.Fatal(err)
	}
	calls := f.calls()
	if len(calls) < 2 || len(calls[0]) != 5 {
		t.Fatalf("calls %v for 12 texts at 5 per call: the first batch must hold 5", calls)
	}
	if c.pace.perText == 20*time.Millisecond {
		t.Error("the pace was not updated from the calls")
	}
	if _, err := c.Embed(context.Background(), Interactive, "e", texts(12)); err != nil {
		t.Fatal(err)
	}
	if last := f.calls()[len(f.calls())-1]; len(last) != 12 {
		t.Errorf("interactive call split into batches of %d, want one batch of 12", len(last))
	}
}

func chanOf(c chan struct{}) <-chan struct{} { return c }

// Questions arriving faster than maxYield keep some hold active all the time: background work
// still gets one call through every maxYield instead of starving.
func TestGateOverlappingHoldsSlowButNeverStopBackground(t *testing.T) {
	g := newGate("embed", 2, 1, 8, 8, 40*time.Millisecond, nil)
	stop := make(chan struct{})
	defer close(stop)
	g.hold()
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				g.hold() // never released: each lapses after maxYield, the next already holds
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		rel, err := g.acquire(ctx, Background, true)
		if err != nil {
			t.Fatalf("background call %d starved under overlapping holds: %v", i, err)
		}
		if s, _ := g.state(); s.Holds == 0 {
			t.Logf("call %d admitted in a gap between holds", i)
		}
		rel()
	}
}

func TestEmbedPaceClampsAStalledBatch(t *testing.T) {
	p := embedPace{perText: 100 * time.Millisecond}
	p.observe(1, 10*time.Second) // counted as 4 × 100 ms
	if p.perText != 175*time.Millisecond {
		t.Errorf("estimate %s after one stalled batch, want 175ms", p.perText)
	}
}

// The pace is Ollama's own time without the model load, so the load in the first call does
// not shrink the batches after it.
func TestEmbedPaceUsesOllamaTimeWithoutLoad(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.EmbedRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		n := len(req.Input.([]any))
		load := time.Duration(0)
		if calls.Add(1) == 1 {
			load = 5 * time.Second
		}
		resp := api.EmbedResponse{Model: req.Model, LoadDuration: load, TotalDuration: load + time.Duration(n)*30*time.Millisecond}
		for range n {
			resp.Embeddings = append(resp.Embeddings, []float32{1, 0})
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	c := New(Options{BaseURL: srv.URL})
	if _, err := c.Embed(context.Background(), Background, "e", texts(4)); err != nil {
		t.Fatal(err)
	}
	if c.pace.perText != 30*time.Millisecond {
		t.Errorf("pace %s, want Ollama's 30ms per text without the 5 s load", c.pace.perText)
	}
}

// With nothing measured, a background call starts with a probe batch and sizes the rest from
// what it measured: a question never waits behind a first full batch of unknown length.
func TestEmbedProbesBeforeFullBatches(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 32, EmbedConcurrency: 1, BackgroundCallTarget: time.Hour})
	if _, err := c.Embed(context.Background(), Background, "e", texts(40)); err != nil {
		t.Fatal(err)
	}
	calls := f.calls()
	if len(calls) < 2 || len(calls[0]) != probeBatch || len(calls[1]) != 32 {
		t.Errorf("batch sizes %v: want a probe of %d, then full batches once the pace is known", lens(calls), probeBatch)
	}
}

func lens(calls [][]string) []int {
	var out []int
	for _, c := range calls {
		out = append(out, len(c))
	}
	return out
}

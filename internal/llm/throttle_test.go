package llm

import (
	"context"
	"testing"
	"time"
)

// The background throttle (a latency objective's actuator): fewer summaries at once as the
// level falls, at the floor only into an idle pool; ingest embeddings never below one call at
// a time; smaller ingest batches; everything queued admitted at once when the level rises.

func TestThrottleBackgroundChat(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), NumParallel: 4, BackgroundMax: 2, MaxYield: time.Hour})
	ctx := context.Background()

	// Level 1: the configured two summaries at once.
	a, b := goChat(ctx, c, Background, "sum"), goChat(ctx, c, Background, "sum")
	next(t, f.chats).Release()
	next(t, f.chats).Release()
	result(t, a)
	result(t, b)

	// Half: one at a time.
	c.SetBackgroundLevel(0.5)
	a, b = goChat(ctx, c, Background, "sum"), goChat(ctx, c, Background, "sum")
	first := next(t, f.chats)
	waitGate(t, c.chat, func(s gateState) bool { return s.InFlight[Background] == 1 && s.Queued[Background] == 1 })
	none(t, f.chats)
	first.Release()
	next(t, f.chats).Release()
	result(t, a)
	result(t, b)

	// The floor: a summary waits while an answer is being generated, though slots are free,
	// and starts when the pool is idle.
	c.SetBackgroundLevel(0.1)
	answer := goChat(ctx, c, Interactive, "chat")
	ans := next(t, f.chats)
	sum := goChat(ctx, c, Background, "sum")
	waitGate(t, c.chat, func(s gateState) bool { return s.InFlight == [2]int{1, 0} && s.Queued[Background] == 1 })
	none(t, f.chats)
	ans.Release()
	result(t, answer)
	s := next(t, f.chats)
	if s.Model != "sum" {
		t.Fatalf("next call %q, want the summary", s.Model)
	}
	// …and only one at a time even in an idle pool.
	sum2 := goChat(ctx, c, Background, "sum")
	waitGate(t, c.chat, func(s gateState) bool { return s.InFlight[Background] == 1 && s.Queued[Background] == 1 })
	none(t, f.chats)
	s.Release()
	result(t, sum)
	next(t, f.chats).Release()
	result(t, sum2)

	// Back to 1 while summaries wait behind an answer: they start at once, beside it.
	answer = goChat(ctx, c, Interactive, "chat")
	ans = next(t, f.chats)
	c.SetBackgroundLevel(0.1)
	a, b = goChat(ctx, c, Background, "sum"), goChat(ctx, c, Background, "sum")
	waitGate(t, c.chat, func(s gateState) bool { return s.Queued[Background] == 2 })
	c.SetBackgroundLevel(1)
	next(t, f.chats).Release()
	next(t, f.chats).Release()
	result(t, a)
	result(t, b)
	ans.Release()
	result(t, answer)
}

func TestThrottleEmbedFloorKeepsIngestMoving(t *testing.T) {
	f := newFakeOllama(t)
	f.holdEmbeds = true
	c := New(Options{BaseURL: f.URL(), EmbedConcurrency: 3, EmbedBackgroundMax: 2, EmbedBatchSize: 1, MaxYield: time.Hour})
	ctx := context.Background()

	ingest := func() <-chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := c.Embed(ctx, Background, "e", texts(4))
			ch <- err
		}()
		return ch
	}
	// Level 1: two batches in flight.
	done := ingest()
	x, y := next(t, f.embeds), next(t, f.embeds)
	x.Release()
	y.Release()
	next(t, f.embeds).Release()
	next(t, f.embeds).Release()
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}

	// The lowest level: still one batch at a time, to the end.
	c.SetBackgroundLevel(0)
	done = ingest()
	for i := range 4 {
		h := next(t, f.embeds)
		if i < 3 {
			waitGate(t, c.embed, func(s gateState) bool { return s.InFlight[Background] == 1 && s.Queued[Background] == 1 })
		}
		none(t, f.embeds)
		h.Release()
	}
	if err := result(t, done); err != nil {
		t.Fatalf("ingest at the floor: %v", err)
	}
}

func TestThrottleShrinksIngestBatches(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), EmbedBatchSize: 32, BackgroundCallTarget: 250 * time.Millisecond, MaxYield: time.Hour})
	ctx := context.Background()
	sizes := func() []int {
		var out []int
		for _, call := range f.calls() {
			out = append(out, len(call))
		}
		return out
	}
	// Ollama has been taking 10 ms a text: 250 ms is 25 texts a call.
	c.pace.perText = 10 * time.Millisecond
	if _, err := c.Embed(ctx, Background, "e", texts(25)); err != nil {
		t.Fatal(err)
	}
	c.SetBackgroundLevel(0.2) // 50 ms: 5 texts a call
	c.pace.perText = 10 * time.Millisecond
	if _, err := c.Embed(ctx, Background, "e", texts(10)); err != nil {
		t.Fatal(err)
	}
	// A question's embedding is never split or scaled.
	if _, err := c.Embed(ctx, Interactive, "e", texts(12)); err != nil {
		t.Fatal(err)
	}
	got := sizes()
	if len(got) != 4 || got[0] != 25 || got[1] != 5 || got[2] != 5 || got[3] != 12 {
		t.Fatalf("texts per /api/embed call: %v, want [25 5 5 12]", got)
	}
}

// At the floor a summary waiting behind a steady stream of answers is let in once 30 s have
// passed without any background call, so enrichment slows instead of running into its
// deadline.
func TestThrottleFloorLetsASummaryThroughEvery30s(t *testing.T) {
	f := newFakeOllama(t)
	c := New(Options{BaseURL: f.URL(), NumParallel: 4, BackgroundMax: 1, MaxYield: time.Hour})
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	c.chat.mu.Lock()
	c.chat.throttle.now = func() time.Time { return now }
	c.chat.mu.Unlock()
	c.SetBackgroundLevel(0.1)

	// Into an idle pool: admitted at once.
	s := goChat(ctx, c, Background, "sum")
	next(t, f.chats).Release()
	result(t, s)

	answer := goChat(ctx, c, Interactive, "chat")
	ans := next(t, f.chats)
	s = goChat(ctx, c, Background, "sum")
	waitGate(t, c.chat, func(s gateState) bool { return s.Queued[Background] == 1 })
	c.chat.mu.Lock()
	now = now.Add(29 * time.Second)
	c.chat.dispatchLocked()
	c.chat.mu.Unlock()
	none(t, f.chats) // 29 s: still waiting for the answer

	c.chat.mu.Lock()
	now = now.Add(2 * time.Second)
	c.chat.dispatchLocked() // what the wake-up timer does
	c.chat.publishLocked()
	c.chat.mu.Unlock()
	sum := next(t, f.chats)
	if sum.Model != "sum" {
		t.Fatalf("%q reached Ollama, want the summary let through after 31 s", sum.Model)
	}
	sum.Release()
	result(t, s)
	ans.Release()
	result(t, answer)
}

package llm

import (
	"context"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/slo"
)

// TestObjectiveThrottlesBackground: the latency objective's controller driving this client.
// Answers over the target take summary slots away until summaries wait for an idle pool, while
// ingest keeps one embedding call going at the floor; answers in time give the slots back.
func TestObjectiveThrottlesBackground(t *testing.T) {
	f := newFakeOllama(t)
	f.holdEmbeds = true
	c := New(Options{BaseURL: f.URL(), NumParallel: 4, BackgroundMax: 2, EmbedConcurrency: 3, EmbedBackgroundMax: 2, EmbedBatchSize: 1, MaxYield: time.Hour})
	ctl := slo.NewController(slo.ControllerOptions{Target: time.Second}, c)
	ctx := context.Background()
	late := func() {
		ctl.Observe(3 * time.Second)
		ctl.Step()
	}

	late() // 0.5: one summary at a time
	a := goChat(ctx, c, Background, "sum")
	first := next(t, f.chats) // a's request: b starts after it
	b := goChat(ctx, c, Background, "sum")
	waitGate(t, c.chat, func(s gateState) bool { return s.InFlight[Background] == 1 && s.Queued[Background] == 1 })
	none(t, f.chats)

	late() // 0.25: no summary slot while an answer is generated
	late() // 0.125
	late() // the floor, 0.1
	if ctl.Level() != 0.1 {
		t.Fatalf("level %v after four late revisions, want the floor 0.1", ctl.Level())
	}
	answer := goChat(ctx, c, Interactive, "chat")
	ans := next(t, f.chats)
	first.Release()
	result(t, a)
	waitGate(t, c.chat, func(s gateState) bool { return s.InFlight == [2]int{1, 0} && s.Queued[Background] == 1 })
	none(t, f.chats) // the second summary waits for the answer

	// At the floor ingest still moves, one embedding call at a time.
	ingest := make(chan error, 1)
	go func() {
		_, err := c.Embed(ctx, Background, "e", texts(2))
		ingest <- err
	}()
	e1 := next(t, f.embeds)
	waitGate(t, c.embed, func(s gateState) bool { return s.InFlight[Background] == 1 && s.Queued[Background] == 1 })
	e1.Release()
	next(t, f.embeds).Release()
	if err := result(t, ingest); err != nil {
		t.Fatal(err)
	}

	// Answers in time: the level climbs back a tenth per revision, and at 0.5 the waiting
	// summary runs beside the answer.
	for range 4 {
		ctl.Observe(100 * time.Millisecond)
		ctl.Step()
	}
	if ctl.Level() != 0.5 {
		t.Fatalf("level %v after four revisions in time, want 0.5", ctl.Level())
	}
	next(t, f.chats).Release()
	result(t, b)
	ans.Release()
	result(t, answer)
	for range 5 {
		ctl.Step() // no questions: up to 1
	}
	if ctl.Level() != 1 {
		t.Fatalf("level %v, want 1", ctl.Level())
	}
	a, b = goChat(ctx, c, Background, "sum"), goChat(ctx, c, Background, "sum")
	next(t, f.chats).Release()
	next(t, f.chats).Release()
	result(t, a)
	result(t, b)
}

package llm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The lane rules, proven on the gate alone (no HTTP): every step waits for the gate's state,
// never for time.

func TestGateInteractiveOvertakesEarlierBackground(t *testing.T) {
	g := newGate("chat", 2, 1, 8, 8, 0, nil)
	ctx := context.Background()
	relBG, err := g.acquire(ctx, Background, true)
	if err != nil {
		t.Fatal(err)
	}
	relI, err := g.acquire(ctx, Interactive, true)
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 2)
	go func() {
		rel, err := g.acquire(ctx, Background, true)
		if err == nil {
			order <- "background"
			rel()
		}
	}()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Background] == 1 })
	go func() {
		rel, err := g.acquire(ctx, Interactive, true)
		if err == nil {
			order <- "interactive"
			rel()
		}
	}()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Interactive] == 1 })

	// The background slot frees: the background waiter is within its lane's limit, yet the
	// interactive waiter that queued later gets the slot.
	relBG()
	if got := result(t, order); got != "interactive" {
		t.Fatalf("first admitted after release: %s, want interactive", got)
	}
	relI()
	if got := result(t, order); got != "background" {
		t.Fatalf("second admitted: %s, want background", got)
	}
}

func TestGateBackgroundNeverTakesLastSlot(t *testing.T) {
	// NumParallel 3, BackgroundMax 5: background is clamped to 2 of the 3 slots.
	c := New(Options{BaseURL: "http://127.0.0.1:1", NumParallel: 3, BackgroundMax: 5})
	g := c.chat
	ctx := context.Background()
	var rels []func()
	for range 2 {
		rel, err := g.acquire(ctx, Background, true)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	bgCtx, cancelBG := context.WithCancel(ctx)
	bgErr := make(chan error, 1)
	go func() {
		_, err := g.acquire(bgCtx, Background, true)
		bgErr <- err
	}()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Background] == 1 })
	s, _ := g.state()
	if s.InFlight != [2]int{0, 2} {
		t.Fatalf("in flight %v, want background holding 2 of 3 with one free", s.InFlight)
	}
	// The free slot is there for interactive work, immediately.
	rel, err := g.acquire(ctx, Interactive, true)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	cancelBG()
	if err := result(t, bgErr); !errors.Is(err, context.Canceled) {
		t.Fatalf("queued background: %v, want context.Canceled", err)
	}
	for _, r := range rels {
		r()
	}
	s, _ = g.state()
	if s != (gateState{}) {
		t.Fatalf("state after all released: %+v", s)
	}
}

func TestGateNoBackgroundSlot(t *testing.T) {
	for _, o := range []Options{{NumParallel: 1, BackgroundMax: 1}, {NumParallel: 4, BackgroundMax: 0}} {
		o.BaseURL = "http://127.0.0.1:1"
		c := New(o)
		_, err := c.Chat(context.Background(), Background, ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "x"}}})
		if !errors.Is(err, ErrNoBackgroundSlot) {
			t.Errorf("%+v: background chat error %v, want ErrNoBackgroundSlot", o, err)
		}
	}
}

func TestGateBoundedQueue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := New(Options{BaseURL: "http://127.0.0.1:1", NumParallel: 2, BackgroundMax: 1, MaxQueueBackground: 1, MaxQueueInteractive: 1, Metrics: reg})
	g := c.chat
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relBG, _ := g.acquire(ctx, Background, true)
	defer relBG()
	go func() { _, _ = g.acquire(ctx, Background, true) }()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Background] == 1 })

	_, err := g.acquire(ctx, Background, true)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("background with a full queue: %v, want ErrBusy", err)
	}
	// An admitted call's later acquisitions (next batch, retry) are not refused: it queues.
	go func() { _, _ = g.acquire(ctx, Background, false) }()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Background] == 2 })

	// The interactive lane has its own queue and the free slot.
	relI, err := g.acquire(ctx, Interactive, true)
	if err != nil {
		t.Fatalf("interactive: %v", err)
	}
	defer relI()
	if got := value(t, c.metrics.chat.rejected[Background]); got != 1 {
		t.Errorf("rejected metric %v, want 1", got)
	}
	if got := value(t, c.metrics.chat.queued[Background]); got != 2 {
		t.Errorf("queue depth metric %v, want 2", got)
	}
	if got := value(t, c.metrics.chat.inFlight[Interactive]); got != 1 {
		t.Errorf("in-flight metric %v, want 1", got)
	}
}

func TestGateCancelledInteractiveWaiterUnblocksBackground(t *testing.T) {
	g := newGate("chat", 2, 1, 8, 8, 0, nil)
	ctx := context.Background()
	relI, _ := g.acquire(ctx, Interactive, true)
	relI2, _ := g.acquire(ctx, Interactive, true)
	// Full. An interactive and then a background waiter queue.
	iCtx, cancelI := context.WithCancel(ctx)
	iErr := make(chan error, 1)
	go func() { _, err := g.acquire(iCtx, Interactive, true); iErr <- err }()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Interactive] == 1 })
	bgGot := make(chan func(), 1)
	go func() {
		rel, err := g.acquire(ctx, Background, true)
		if err == nil {
			bgGot <- rel
		}
	}()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Background] == 1 })
	cancelI()
	if err := result(t, iErr); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	relI()
	rel := result(t, bgGot)
	rel()
	relI2()
}

// With Ollama's slot count unknown (the config file does not carry it) background work is still
// capped at BackgroundMax, and interactive calls are never held back by it.
func TestGateUnknownNumParallel(t *testing.T) {
	c := New(Options{BaseURL: "http://127.0.0.1:1", BackgroundMax: 1})
	g := c.chat
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relBG, err := g.acquire(ctx, Background, true)
	if err != nil {
		t.Fatal(err)
	}
	defer relBG()
	go func() { _, _ = g.acquire(ctx, Background, true) }()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Background] == 1 })
	for range 10 {
		if _, err := g.acquire(ctx, Interactive, true); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := g.state()
	if s.InFlight != [2]int{10, 1} || s.Queued != [2]int{0, 1} {
		t.Fatalf("state %+v", s)
	}
}

// While questions are being asked (a hold, then askedWindow after it), only one background call
// is in flight however many the lane allows; before the first question and once the window
// lapses, the lane's whole allowance is used again.
func TestGateOneBackgroundCallWhileQuestionsAreAsked(t *testing.T) {
	g := newGate("chat", 4, 3, 8, 8, time.Hour, nil)
	g.askedWindow = 1500 * time.Millisecond
	ctx := context.Background()
	acquire := func() func() {
		t.Helper()
		rel, err := g.acquire(ctx, Background, true)
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	// No question yet: three background calls at once.
	rels := []func(){acquire(), acquire(), acquire()}
	for _, r := range rels {
		r()
	}

	g.hold()() // a question, answered
	first := acquire()
	admitted := make(chan func(), 1)
	go func() {
		rel, err := g.acquire(ctx, Background, true)
		if err == nil {
			admitted <- rel
		}
	}()
	waitGate(t, g, func(s gateState) bool { return s.Queued[Background] == 1 })
	select {
	case <-admitted:
		t.Fatal("a second background call was admitted right after a question")
	case <-time.After(200 * time.Millisecond):
	}
	// No further question: the window lapses and the waiter goes in beside the first call.
	second := result(t, admitted)
	if s, _ := g.state(); s.InFlight[Background] != 2 {
		t.Fatalf("after the window: %d background calls in flight, want 2", s.InFlight[Background])
	}
	first()
	second()

	// Off (0): the lane's allowance applies right after a question.
	g.askedWindow = 0
	g.hold()()
	rels = []func(){acquire(), acquire(), acquire()}
	for _, r := range rels {
		r()
	}
}

package slo

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// levels records what the controller applied.
type levels struct {
	mu  sync.Mutex
	got []float64
}

func (l *levels) SetBackgroundLevel(x float64) {
	l.mu.Lock()
	l.got = append(l.got, x)
	l.mu.Unlock()
}

func (l *levels) last() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got[len(l.got)-1]
}

// TestControllerAIMD: answers over the target halve background work at each revision down to
// the floor, where it stays however late answers are; answers in time (or none at all) bring
// it back a tenth at a time, up to the configured limits and no further.
func TestControllerAIMD(t *testing.T) {
	act := &levels{}
	c := NewController(ControllerOptions{Target: 2 * time.Second}, act)
	if act.last() != 1 {
		t.Fatalf("starts at %v, want the configured limits (1)", act.last())
	}
	slow := func() {
		// 19 answers in time and one late is a p95 within the target; 18 and two late is not.
		for range 18 {
			c.Observe(time.Second)
		}
		c.Observe(3 * time.Second)
		c.Observe(4 * time.Second)
	}
	var down []float64
	for range 6 {
		slow()
		down = append(down, c.Step())
	}
	if want := []float64{0.5, 0.25, 0.125, 0.1, 0.1, 0.1}; !slices.Equal(down, want) {
		t.Fatalf("levels under a missed target: %v, want %v (halved, floor 0.1)", down, want)
	}
	if act.last() != 0.1 {
		t.Fatalf("applied %v, want the floor", act.last())
	}

	// One late answer in twenty is within a p95 target: the level rises.
	for range 19 {
		c.Observe(time.Second)
	}
	c.Observe(10 * time.Second)
	if got := c.Step(); !near(got, 0.2) {
		t.Fatalf("after a revision within the target: %v, want 0.2", got)
	}
	// No question at all: nothing to protect, the level keeps rising, to 1 and no further.
	var up []float64
	for range 10 {
		up = append(up, c.Step())
	}
	if !near(up[0], 0.3) || up[7] != 1 || up[9] != 1 {
		t.Fatalf("levels without questions: %v, want 0.3, 0.4, … 1, 1", up)
	}
	if act.last() != 1 {
		t.Fatalf("applied %v at the end, want 1", act.last())
	}

	// Answers judged once: the late ones of a revision do not count again at the next.
	slow()
	c.Step()
	if got := c.Step(); got != 0.6 {
		t.Fatalf("a revision after the late answers were judged: %v, want 0.6 (0.5 + 0.1)", got)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestControllerCountsStuckQuestions: a question still without its first token past the
// target is a miss at the revision (background work must give way to it), not a revision
// without questions; once it is answered, the level rises again.
func TestControllerCountsStuckQuestions(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := NewController(ControllerOptions{Target: 2 * time.Second}, &levels{})
	c.now = func() time.Time { return now }
	done := c.Started()
	fresh := c.Started()
	now = now.Add(time.Second)
	if got := c.Step(); got != 1 {
		t.Fatalf("questions waiting 1 s of a 2 s target: level %v, want 1", got)
	}
	now = now.Add(5 * time.Second)
	fresh()
	if got := c.Step(); got != 0.5 {
		t.Fatalf("a question waiting 6 s for a 2 s target: level %v, want 0.5", got)
	}
	done()
	done() // safe twice
	if got := c.Step(); got != 0.6 {
		t.Fatalf("after it was answered: level %v, want 0.6", got)
	}
}

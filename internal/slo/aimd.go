package slo

import (
	"context"
	"math"
	"sync"
	"time"
)

// Actuator applies a background level to the work that competes with answers: 1 runs
// background work at its configured limits, lower runs less of it (see
// llm.Ollama.SetBackgroundLevel for what a level means and where its floor is).
type Actuator interface {
	SetBackgroundLevel(level float64)
}

// ControllerOptions tune the AIMD loop; zero values take the defaults noted.
type ControllerOptions struct {
	// Target is the chat time-to-first-token p95 to hold. Required.
	Target time.Duration
	// Interval is how often the level is revised, from the answers that started since the last
	// revision. Default 5s: a few questions at a human pace, and short enough that a burst of
	// ingest is reined in within seconds.
	Interval time.Duration
	// Decrease multiplies the level when the recent p95 is over the target. Default 0.5.
	Decrease float64
	// Increase is added to the level when the recent p95 is within the target, or no question
	// was asked. Default 0.1: from the floor to full in under a minute.
	Increase float64
	// Floor is the lowest level. Default 0.1. Whatever the level, the actuator keeps one
	// background embedding call at a time, so ingest never stops.
	Floor float64
}

func (o ControllerOptions) withDefaults() ControllerOptions {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Decrease <= 0 || o.Decrease >= 1 {
		o.Decrease = 0.5
	}
	if o.Increase <= 0 {
		o.Increase = 0.1
	}
	if o.Floor <= 0 || o.Floor > 1 {
		o.Floor = 0.1
	}
	return o
}

// Controller holds a chat TTFT target by AIMD on the background level, the way TCP holds a
// queue short: each Interval it takes the p95 of the times to first token observed since the
// last revision; over the target, the level is multiplied by Decrease (background work gives
// way fast), within it (or with no question asked) Increase is added (it comes back slowly).
// Only answers seen under the current level are judged, so one slow burst halves the level
// once, not at every revision while it stays in the reporting window.
type Controller struct {
	opts ControllerOptions
	act  Actuator

	mu      sync.Mutex
	level   float64
	recent  []time.Duration
	waiting map[uint64]time.Time // questions without a first token yet: start by ticket
	ticket  uint64
	now     func() time.Time
}

// NewController starts at level 1 (the configured limits) and applies it.
func NewController(opts ControllerOptions, act Actuator) *Controller {
	c := &Controller{opts: opts.withDefaults(), act: act, level: 1, waiting: map[uint64]time.Time{}, now: time.Now}
	act.SetBackgroundLevel(1)
	return c
}

// Observe records one answer's time to first token.
func (c *Controller) Observe(ttft time.Duration) {
	c.mu.Lock()
	c.recent = append(c.recent, ttft)
	c.mu.Unlock()
}

// Started records a question waiting for its first token; done (safe to call more than once)
// ends the wait. A question still waiting past the target at a revision counts as an answer
// that late: a stuck question must lower the level, not let it rise as if none were asked.
func (c *Controller) Started() (done func()) {
	c.mu.Lock()
	c.ticket++
	key := c.ticket
	c.waiting[key] = c.now()
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.waiting, key)
		c.mu.Unlock()
	}
}

// Level is the background level now, between Floor and 1.
func (c *Controller) Level() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.level
}

// Step revises the level from the answers observed since the last Step, and the questions
// still waiting past the target, and applies it.
func (c *Controller) Step() float64 {
	c.mu.Lock()
	recent := c.recent
	c.recent = nil
	now := c.now()
	for _, start := range c.waiting {
		if late := now.Sub(start); late > c.opts.Target {
			recent = append(recent, late)
		}
	}
	old := c.level
	if len(recent) > 0 && Quantile(recent, .95) > c.opts.Target {
		c.level = max(c.opts.Floor, c.level*c.opts.Decrease)
	} else {
		c.level = min(1, c.level+c.opts.Increase)
	}
	c.level = math.Round(c.level*1e6) / 1e6 // 0.1 added ten times is 1, not 0.9999999999999999
	level := c.level
	c.mu.Unlock()
	if level != old {
		c.act.SetBackgroundLevel(level)
	}
	return level
}

// Run steps every Interval until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Step()
		}
	}
}

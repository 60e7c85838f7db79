package llm

import (
	"math"
	"time"
)

// The background throttle: how much of its configured room background work may use now. A
// latency objective (internal/slo) lowers the level while answers start too late and raises it
// again when they are in time; without one it stays at 1 and nothing here changes a rule of
// lanes.go.

// floorEvery is how long a background call may wait at 0 slots before one is let in although
// answers are in progress: under a steady stream of questions the pool is never idle, and a
// summary waiting past its enrichment deadline would fail instead of being slow.
const floorEvery = 30 * time.Second

// bgThrottle is a gate's dynamic limit on background calls, below laneMax[Background].
type bgThrottle struct {
	on bool // false: laneMax alone decides
	// slots is the most background calls in flight. 0 means "only into an idle pool": one
	// background call, admitted while no interactive call is in flight or held for, so a
	// summary waits for the answers of the moment instead of starting under them, or once
	// floorEvery has passed since the last background admission.
	slots int
	level float64 // the level these were derived from (1 when off)

	lastAdmit time.Time        // the last background admission the throttle allowed
	wake      *time.Timer      // dispatches when floorEvery is up for a waiting call
	now       func() time.Time // tests; nil: time.Now
}

// throttleAllowsLocked is the throttle's part of admissibleLocked for a background call. It is
// the last condition there, so true means the call is admitted now: the time is recorded.
func (g *gate) throttleAllowsLocked() bool {
	t := &g.throttle
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	ok := !t.on
	switch {
	case ok:
	case t.slots > 0:
		ok = g.inFlight[Background] < t.slots
	case g.inFlight[Background] > 0:
	case g.inFlight[Interactive] == 0 && g.holds == 0:
		ok = true
	default:
		wait := floorEvery - now().Sub(t.lastAdmit)
		if ok = wait <= 0; !ok && t.wake == nil {
			t.wake = time.AfterFunc(wait, func() {
				g.mu.Lock()
				defer g.mu.Unlock()
				g.throttle.wake = nil
				g.dispatchLocked()
				g.publishLocked()
			})
		}
	}
	if ok {
		t.lastAdmit = now()
	}
	return ok
}

// setThrottle sets the gate's background slots for a level: slots(level × the lane's limit),
// at least floor (0: the idle-pool rule above). Waiters a higher level admits are dispatched at
// once.
func (g *gate) setThrottle(level float64, floor int, slots func(float64) int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	limit := g.laneMax[Background]
	t := &g.throttle
	if level >= 1 || limit == 0 {
		t.on, t.slots, t.level = false, 0, 1
	} else {
		t.on, t.slots, t.level = true, min(limit, max(floor, slots(level*float64(limit)+1e-9))), level
	}
	g.dispatchLocked()
	g.publishLocked()
}

// throttleLevel is the level the gate runs at (1 when not throttled).
func (g *gate) throttleLevel() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.throttle.on {
		return 1
	}
	return g.throttle.level
}

// SetBackgroundLevel scales background work to level (clamped to 0..1; 1: the configured
// limits) — the actuator of a latency objective (slo.Actuator). What a level means:
//
//   - background chat calls (summaries, tags, warming): floor(level × warmingMaxConcurrentQueries)
//     slots; at 0 slots one call at a time, and only while no answer is being generated or
//     awaited (the pool is otherwise idle), or after floorEvery without one (enrichment slows,
//     it does not stop);
//   - background embedding calls (ingest): round(level × their limit) in flight, never fewer
//     than one — the floor that keeps ingest moving whatever the answers need;
//   - background embedding batches: sized to level × BackgroundCallTarget of Ollama's time
//     (at least one text), so a question's embedding waits behind a shorter batch.
//
// Holds (HoldBackground) apply on top, as before.
func (o *Ollama) SetBackgroundLevel(level float64) {
	level = max(0, min(1, level))
	// Chat slots round down: on a pool of one, any level below 1 must take the slot's freedom
	// away to mean anything. Embedding calls round to nearest, never below one.
	o.chat.setThrottle(level, 0, func(x float64) int { return int(math.Floor(x)) })
	o.embed.setThrottle(level, 1, func(x float64) int { return int(math.Round(x)) })
}

// backgroundCallTarget is BackgroundCallTarget scaled by the throttle level.
func (o *Ollama) backgroundCallTarget() time.Duration {
	t := o.opts.BackgroundCallTarget
	if t <= 0 {
		return t
	}
	return max(time.Millisecond, time.Duration(float64(t)*o.embed.throttleLevel()))
}

// SetBackgroundLevel scales background work on every server of the pool (slo.Actuator): each
// server's lanes are throttled alike, since a question may go to any of them.
func (p *Pool) SetBackgroundLevel(level float64) {
	for _, m := range p.members {
		m.o.SetBackgroundLevel(level)
	}
}

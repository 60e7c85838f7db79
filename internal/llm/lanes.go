package llm

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// gate is a counting semaphore with two priority lanes in front of one pool of Ollama slots.
//
// Rules (all decided under one mutex, so they hold exactly, not statistically):
//   - at most capacity holders in total;
//   - at most laneMax[Background] of them background (for the chat pool that is
//     min(BackgroundMax, NumParallel-1), so the last slot is always free for interactive work);
//   - a background acquisition is never admitted while an interactive one waits: when a slot
//     frees, the oldest interactive waiter gets it, even if background waiters queued earlier;
//   - within a lane, first come first served (a newcomer never overtakes a waiter of its lane);
//   - each lane's wait queue is bounded; a full queue answers ErrBusy at once instead of letting
//     the caller time out later;
//   - while a hold is active (a user waits for a first token, see Ollama.HoldBackground), no
//     background call is admitted, even to a free slot: Ollama's models share one GPU (or the
//     CPU), so a background batch started now would slow the user's prefill. Background is
//     slowed, never stopped: a hold lapses after maxYield (a stuck answer), and while holds
//     overlap without a break, one background call is let through every passEvery (maxYield
//     unless set longer: see Ollama.SetPreemption). Calls
//     already running are not interrupted here (preempt.go cuts background chat calls);
//   - while questions are being asked (a hold is active or ended less than askedWindow ago),
//     at most one background call is in flight (see Options.QuestionWindow).
//
// Holding a slot means a request is in flight at Ollama. Ollama itself queues without limit for
// an already loaded model, so this gate, not Ollama, is where back-pressure and priority live.
type gate struct {
	pool     string // "chat" or "embed", for errors and metrics
	capacity int
	laneMax  [2]int // most slots a lane may hold
	maxQueue [2]int // most waiters a lane may have
	maxYield time.Duration
	// passEvery is how long holds must overlap without a break before one background call is
	// let through (0: maxYield).
	passEvery time.Duration

	mu sync.Mutex
	// holdSeq counts holds ever begun: a call admitted at generation n and not yet sent when
	// holdSeq passes n was granted just before a question arrived (heldSince).
	holdSeq uint64
	// askedWindow: for this long after a hold ends (people are asking questions), at most one
	// background call runs (see Options.QuestionWindow); 0: off. askedUntil is when it lapses.
	askedWindow time.Duration
	askedUntil  time.Time
	askedTimer  *time.Timer
	holds       int // active holds: background admissions pause while > 0
	// pass lets one background call through a hold; yieldTimer grants it after maxYield of
	// uninterrupted holds.
	pass       bool
	yieldTimer *time.Timer
	inFlight   [2]int
	queue      [2]*list.List // of *waiter
	throttle   bgThrottle    // a latency objective's limit on background calls (throttle.go)
	// changed is closed and replaced on every state change. Tests wait on it to observe "the
	// call is queued now" without sleeping; nothing else reads it.
	changed chan struct{}
	metrics *gateMetrics
}

type waiter struct {
	ready   chan struct{} // closed when the slot is granted
	granted bool          // set under gate.mu together with closing ready
	grant   grant         // how it was granted, set with granted
	elem    *list.Element
}

// gateState is a consistent snapshot, for tests and debugging.
type gateState struct {
	InFlight [2]int
	Queued   [2]int
	Holds    int
}

func newGate(pool string, capacity, backgroundMax, interactiveQueue, backgroundQueue int, maxYield time.Duration, m *gateMetrics) *gate {
	g := &gate{
		pool:     pool,
		capacity: capacity,
		laneMax:  [2]int{Interactive: capacity, Background: min(backgroundMax, capacity)},
		maxQueue: [2]int{Interactive: interactiveQueue, Background: backgroundQueue},
		maxYield: maxYield,
		queue:    [2]*list.List{list.New(), list.New()},
		changed:  make(chan struct{}),
		metrics:  m,
	}
	g.publishLocked()
	return g
}

// acquire waits for a slot on the lane and returns the function that gives it back (safe to call
// more than once). mayReject says whether a full queue answers ErrBusy: true for a call's first
// acquisition; false for the later ones of a call already admitted (the next batch of an Embed,
// a retry), so work the server has accepted is not dropped half-done for being polite.
func (g *gate) acquire(ctx context.Context, lane Lane, mayReject bool) (func(), error) {
	release, _, err := g.acquireSeq(ctx, lane, mayReject)
	return release, err
}

// grant is what acquireSeq says of an admission: the hold generation at the grant (see
// heldSince), and whether a hold was active then, so it came through a yield pass.
type grant struct {
	seq    uint64
	passed bool
}

// acquireSeq is acquire that also says how the call was admitted.
func (g *gate) acquireSeq(ctx context.Context, lane Lane, mayReject bool) (func(), grant, error) {
	if err := ctx.Err(); err != nil {
		return nil, grant{}, err
	}
	g.mu.Lock()
	if g.laneMax[lane] == 0 {
		g.mu.Unlock()
		return nil, grant{}, ErrNoBackgroundSlot
	}
	// A newcomer is admitted directly only when nobody of its lane waits (FIFO) and the rules
	// allow it; admissibleLocked also keeps background out while interactive work waits.
	if g.queue[lane].Len() == 0 && g.admissibleLocked(lane) {
		g.useAdmissionLocked(lane)
		g.inFlight[lane]++
		gr := grant{seq: g.holdSeq, passed: g.holds > 0}
		g.publishLocked()
		g.mu.Unlock()
		g.observeWait(lane, 0)
		return g.releaser(lane), gr, nil
	}
	if mayReject && g.queue[lane].Len() >= g.maxQueue[lane] {
		n := g.queue[lane].Len()
		g.mu.Unlock()
		if g.metrics != nil {
			g.metrics.rejected[lane].Inc()
		}
		return nil, grant{}, fmt.Errorf("%w: %s queue of the %s lane is full (%d waiting)", ErrBusy, g.pool, lane, n)
	}
	w := &waiter{ready: make(chan struct{})}
	w.elem = g.queue[lane].PushBack(w)
	g.publishLocked()
	g.mu.Unlock()
	queued := time.Now()

	select {
	case <-w.ready:
		g.observeWait(lane, time.Since(queued))
		return g.releaser(lane), w.grant, nil
	case <-ctx.Done():
		g.mu.Lock()
		if w.granted {
			// The grant raced the cancellation: hand the slot straight on.
			g.releaseLocked(lane)
		} else {
			g.queue[lane].Remove(w.elem)
			// An interactive waiter leaving may unblock background work that deferred to it.
			g.dispatchLocked()
			g.publishLocked()
		}
		g.mu.Unlock()
		return nil, grant{}, ctx.Err()
	}
}

// observeWait records an admitted call's wait. Only admissions count, so "depth above 0 and no
// admissions" tells a queue that does not drain (the chart's alert).
func (g *gate) observeWait(lane Lane, d time.Duration) {
	if g.metrics != nil {
		g.metrics.wait[lane].Observe(d.Seconds())
	}
}

func (g *gate) releaser(lane Lane) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.releaseLocked(lane)
			g.mu.Unlock()
		})
	}
}

func (g *gate) releaseLocked(lane Lane) {
	g.inFlight[lane]--
	g.dispatchLocked()
	g.publishLocked()
}

func (g *gate) admissibleLocked(lane Lane) bool {
	if g.inFlight[Interactive]+g.inFlight[Background] >= g.capacity {
		return false
	}
	if g.inFlight[lane] >= g.laneMax[lane] {
		return false
	}
	if lane == Interactive {
		return true
	}
	if g.askedLocked() && g.inFlight[Background] >= 1 {
		return false
	}
	return g.queue[Interactive].Len() == 0 && (g.holds == 0 || g.pass) && g.throttleAllowsLocked()
}

// hold pauses background admissions until the returned function is called (safe to call more
// than once) or maxYield has passed, whichever comes first. Holds count: background resumes
// when the last one ends.
func (g *gate) hold() func() {
	g.mu.Lock()
	g.holds++
	g.holdSeq++
	if g.holds == 1 {
		g.armYieldLocked()
	}
	g.publishLocked()
	g.mu.Unlock()
	var once sync.Once
	end := func() {
		once.Do(func() {
			g.mu.Lock()
			g.holds--
			g.markAskedLocked()
			if g.holds == 0 {
				g.pass = false
				if g.yieldTimer != nil {
					g.yieldTimer.Stop()
				}
			}
			g.dispatchLocked()
			g.publishLocked()
			g.mu.Unlock()
		})
	}
	if g.maxYield <= 0 {
		return end
	}
	lapse := time.AfterFunc(g.maxYield, end)
	return func() {
		lapse.Stop()
		end()
	}
}

// dispatchLocked hands free slots to waiters: interactive first, then background.
func (g *gate) dispatchLocked() {
	for {
		switch {
		case g.queue[Interactive].Len() > 0 && g.admissibleLocked(Interactive):
			g.grantLocked(Interactive)
		case g.queue[Background].Len() > 0 && g.admissibleLocked(Background):
			g.grantLocked(Background)
		default:
			return
		}
	}
}

// armYieldLocked starts the countdown to the next background pass.
func (g *gate) armYieldLocked() {
	if g.maxYield <= 0 {
		return
	}
	every := cmp.Or(g.passEvery, g.maxYield)
	if g.yieldTimer == nil {
		g.yieldTimer = time.AfterFunc(every, g.yieldPass)
		return
	}
	g.yieldTimer.Reset(every)
}

// setPassEvery sets passEvery (0: maxYield).
func (g *gate) setPassEvery(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.passEvery = d
}

func (g *gate) yieldPass() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holds > 0 {
		g.pass = true
		g.dispatchLocked()
		g.publishLocked()
	}
}

// askedLocked reports whether questions are being asked: a hold is active or ended less than
// askedWindow ago.
func (g *gate) askedLocked() bool {
	return g.askedWindow > 0 && (g.holds > 0 || time.Now().Before(g.askedUntil))
}

// markAskedLocked starts the askedWindow after a hold's end; when it lapses without another
// question, the background calls it kept waiting are admitted.
func (g *gate) markAskedLocked() {
	if g.askedWindow <= 0 {
		return
	}
	g.askedUntil = time.Now().Add(g.askedWindow)
	if g.askedTimer == nil {
		g.askedTimer = time.AfterFunc(g.askedWindow, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.dispatchLocked()
			g.publishLocked()
		})
		return
	}
	g.askedTimer.Reset(g.askedWindow)
}

// heldSince reports whether a hold that began after generation seq (acquireSeq) is active.
func (g *gate) heldSince(seq uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holds > 0 && g.holdSeq > seq
}

// useAdmission records that a background call was admitted: a pass is spent, and the next one
// comes maxYield later if the holds go on.
func (g *gate) useAdmissionLocked(lane Lane) {
	if lane == Background && g.pass {
		g.pass = false
		g.armYieldLocked()
	}
}

func (g *gate) grantLocked(lane Lane) {
	w := g.queue[lane].Remove(g.queue[lane].Front()).(*waiter)
	g.useAdmissionLocked(lane)
	w.granted = true
	w.grant = grant{seq: g.holdSeq, passed: g.holds > 0}
	g.inFlight[lane]++
	close(w.ready)
}

func (g *gate) publishLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
	if g.metrics != nil {
		for _, l := range []Lane{Interactive, Background} {
			g.metrics.inFlight[l].Set(float64(g.inFlight[l]))
			g.metrics.queued[l].Set(float64(g.queue[l].Len()))
		}
	}
}

// state returns a snapshot and a channel closed at the next change.
func (g *gate) state() (gateState, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gateState{
		InFlight: g.inFlight,
		Queued:   [2]int{g.queue[Interactive].Len(), g.queue[Background].Len()},
		Holds:    g.holds,
	}, g.changed
}

// waitFor blocks until cond holds for the gate's state or ctx ends (tests use it to observe
// that a call is queued, instead of sleeping).
func (g *gate) waitFor(ctx context.Context, cond func(gateState) bool) error {
	for {
		s, changed := g.state()
		if cond(s) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s gate state %+v: %w", g.pool, s, ctx.Err())
		}
	}
}

package httpapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Check is one dependency probe for /readyz.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// CheckResult is the last outcome of a probe.
type CheckResult struct {
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checkedAt"`
	LatencyMS int64     `json:"latencyMs"`
}

// Readiness probes dependencies in the background and serves the cached results, so /readyz
// answers at once however slow or dead a dependency is.
type Readiness struct {
	checks   []Check
	interval time.Duration
	timeout  time.Duration

	mu       sync.RWMutex
	results  map[string]CheckResult
	draining atomic.Bool
}

// NewReadiness probes every interval, each probe bounded by timeout.
func NewReadiness(interval, timeout time.Duration, checks ...Check) *Readiness {
	return &Readiness{checks: checks, interval: interval, timeout: timeout, results: map[string]CheckResult{}}
}

// Run probes now and then every interval until ctx ends.
func (r *Readiness) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.ProbeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ProbeOnce runs every probe concurrently and records the results.
func (r *Readiness) ProbeOnce(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range r.checks {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, r.timeout)
			defer cancel()
			start := time.Now()
			err := c.Probe(pctx)
			res := CheckResult{OK: err == nil, CheckedAt: time.Now().UTC(), LatencyMS: time.Since(start).Milliseconds()}
			if err != nil {
				res.Error = err.Error()
			}
			r.mu.Lock()
			r.results[c.Name] = res
			r.mu.Unlock()
		})
	}
	wg.Wait()
}

// SetDraining makes the server report not ready (shutdown: take it out of the Service first).
func (r *Readiness) SetDraining() { r.draining.Store(true) }

// Snapshot is the cached state: ready when every dependency's last probe passed.
func (r *Readiness) Snapshot() (bool, map[string]CheckResult) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]CheckResult, len(r.checks))
	ready := !r.draining.Load()
	for _, c := range r.checks {
		res, ok := r.results[c.Name]
		if !ok {
			res = CheckResult{Error: "not checked yet"}
		}
		ready = ready && res.OK
		out[c.Name] = res
	}
	return ready, out
}

// Package slo measures the server's declared latency objective (chat time to first token p95,
// /healthz p99) over a sliding window, exports it for the operator, and steers background work
// to hold the chat target (AIMD, see Controller).
package slo

import (
	"math"
	"slices"
	"sync"
	"time"
)

// DefaultCapacity bounds a Window's samples: 8192 × 16 bytes = 128 KiB per objective, which
// holds ten minutes of more than 13 questions a second.
const DefaultCapacity = 8192

// Window keeps the newest samples of one objective in a fixed ring and answers exact quantiles
// over those inside the window.
//
// Exact over a ring rather than a decaying sketch (t-digest, a histogram): the operator
// compares the figure with a target and reports met/not met, and a p95 of a few dozen
// questions must be the real 95th value, not a bucket bound or a decayed estimate; the sample
// count it reports must be a real count too. Questions are few (a handful a second at most),
// so the ring is small and a sort at each scrape (every 15-30 s) costs microseconds. When more
// than the capacity arrive within the window, the oldest fall out first: the window then
// covers the newest Capacity samples.
type Window struct {
	span time.Duration

	mu   sync.Mutex
	at   []int64 // unix nanoseconds
	val  []time.Duration
	next int // ring position of the next write
	n    int // samples held (≤ len(at))
}

// NewWindow keeps samples for span, at most capacity of them (≤ 0: DefaultCapacity).
func NewWindow(span time.Duration, capacity int) *Window {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Window{span: span, at: make([]int64, capacity), val: make([]time.Duration, capacity)}
}

// Add records one sample taken at now.
func (w *Window) Add(now time.Time, v time.Duration) {
	w.mu.Lock()
	w.at[w.next], w.val[w.next] = now.UnixNano(), v
	w.next = (w.next + 1) % len(w.at)
	w.n = min(w.n+1, len(w.at))
	w.mu.Unlock()
}

// Quantile returns the q-quantile (nearest rank: the smallest sample with at least q of the
// samples at or below it) of the samples taken within the window before now, and their count;
// 0, 0 when there are none.
func (w *Window) Quantile(now time.Time, q float64) (time.Duration, int) {
	vals := w.Since(now.Add(-w.span))
	return Quantile(vals, q), len(vals)
}

// Since returns the samples taken after from, in no particular order.
func (w *Window) Since(from time.Time) []time.Duration {
	cut := from.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]time.Duration, 0, w.n)
	for i := range w.n {
		if w.at[i] > cut {
			out = append(out, w.val[i])
		}
	}
	return out
}

// Quantile is the nearest-rank q-quantile of vals (reordered in place); 0 for none.
func Quantile(vals []time.Duration, q float64) time.Duration {
	if len(vals) == 0 {
		return 0
	}
	slices.Sort(vals)
	rank := int(math.Ceil(q*float64(len(vals)))) - 1
	return vals[max(0, min(rank, len(vals)-1))]
}

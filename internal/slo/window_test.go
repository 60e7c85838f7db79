package slo

import (
	"testing"
	"time"
)

// TestWindowQuantiles: the reported p95 is the real 95th value of the samples in the window,
// old samples leave it, and a full ring keeps the newest.
func TestWindowQuantiles(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	w := NewWindow(time.Minute, 100)
	if q, n := w.Quantile(t0, .95); q != 0 || n != 0 {
		t.Fatalf("empty window: %v over %d", q, n)
	}
	// 1..100 ms, one a tenth of a second apart: p95 is 95 ms, p99 99 ms, p50 50 ms.
	for i := 1; i <= 100; i++ {
		w.Add(t0.Add(time.Duration(i)*100*time.Millisecond), time.Duration(i)*time.Millisecond)
	}
	now := t0.Add(10 * time.Second)
	for q, want := range map[float64]time.Duration{.5: 50 * time.Millisecond, .95: 95 * time.Millisecond, .99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got, n := w.Quantile(now, q); got != want || n != 100 {
			t.Errorf("q%.2f = %v over %d, want %v over 100", q, got, n, want)
		}
	}
	// 65 s later the samples older than a minute (the first 50) have left the window.
	if got, n := w.Quantile(t0.Add(65*time.Second), .5); n != 50 || got != 75*time.Millisecond {
		t.Errorf("after 65 s: p50 %v over %d, want 75ms over 50", got, n)
	}
	// Ten slow samples push the oldest ten out of the full ring.
	for i := range 10 {
		w.Add(now.Add(time.Duration(i)*time.Millisecond), 5*time.Second)
	}
	if got, n := w.Quantile(now.Add(time.Second), .95); n != 100 || got != 5*time.Second {
		t.Errorf("after the ring wrapped: p95 %v over %d, want 5s over 100", got, n)
	}
	if got, _ := w.Quantile(now.Add(time.Second), .5); got != 60*time.Millisecond {
		t.Errorf("after the ring wrapped: p50 %v, want 60ms (samples 11..100 and ten slow ones)", got)
	}
}

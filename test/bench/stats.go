package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
)

// percentile is the nearest-rank percentile (p in 0..100) of xs; NaN when xs is empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// latencyStats summarise probe samples; failed probes count with the time they took.
type latencyStats struct {
	N      int     `json:"n"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50Ms"`
	P95    float64 `json:"p95Ms"`
	P99    float64 `json:"p99Ms"`
	Max    float64 `json:"maxMs"`
	// NoContext counts chat answers the server gave without the model.
	NoContext int `json:"noContext,omitempty"`
}

func summarize(samples []sample, keep func(sample) bool) latencyStats {
	var xs []float64
	st := latencyStats{}
	for _, s := range samples {
		if keep != nil && !keep(s) {
			continue
		}
		st.N++
		if s.Err != "" {
			st.Errors++
		}
		if s.NoContext {
			st.NoContext++
		}
		xs = append(xs, s.Ms)
	}
	st.P50, st.P95, st.P99, st.Max = percentile(xs, 50), percentile(xs, 95), percentile(xs, 99), percentile(xs, 100)
	return st
}

// postRaw posts a JSON body and returns a 200 answer's bytes.
func postRaw(ctx context.Context, c *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d: %s", url, resp.StatusCode, strings.TrimSpace(string(data[:min(len(data), 300)])))
	}
	return data, nil
}

package main

import (
	"bytes"
	"cmp"
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

// stepMedians is the median of each step of the answers that reported their steps.
type stepMedians struct {
	N            int     `json:"n"`
	TTFT         float64 `json:"ttftMs"` // as the bench measured it (the client's view)
	Embed        float64 `json:"embedMs"`
	Search       float64 `json:"searchMs"`
	Prompt       float64 `json:"promptMs"`
	FirstToken   float64 `json:"modelFirstTokenMs"` // chat request sent to first token
	Load         float64 `json:"loadMs"`
	PromptEval   float64 `json:"promptEvalMs"`
	PromptTokens float64 `json:"promptTokens"`
}

// slowestSteps is medianSteps over the slowest tenth (at least 3) of the kept answers that
// reported their steps, by TTFT.
func slowestSteps(samples []sample, keep func(sample) bool) *stepMedians {
	var kept []sample
	for _, s := range samples {
		if s.Steps != nil && s.Err == "" && keep(s) {
			kept = append(kept, s)
		}
	}
	n := max(3, len(kept)/10)
	if len(kept) < 2*n {
		return nil
	}
	slices.SortStableFunc(kept, func(a, b sample) int { return cmp.Compare(b.Ms, a.Ms) })
	return medianSteps(kept[:n], func(sample) bool { return true })
}

func medianSteps(samples []sample, keep func(sample) bool) *stepMedians {
	var cols [8][]float64
	for _, s := range samples {
		if s.Steps == nil || s.Err != "" || !keep(s) {
			continue
		}
		t := s.Steps
		for i, v := range []float64{s.Ms, t.Embed, t.Search, t.Prompt, t.FirstToken, t.Load, t.PromptEval, float64(t.PromptTokens)} {
			cols[i] = append(cols[i], v)
		}
	}
	if len(cols[0]) == 0 {
		return nil
	}
	m := func(i int) float64 { return percentile(cols[i], 50) }
	return &stepMedians{N: len(cols[0]), TTFT: m(0), Embed: m(1), Search: m(2), Prompt: m(3), FirstToken: m(4), Load: m(5), PromptEval: m(6), PromptTokens: m(7)}
}

package main

import (
	"fmt"
	"slices"
)

// Repeats: every phase runs cfg.Repeats times, interleaved (repeat 1 of every strategy, then
// repeat 2 …) so a drift of the shared machine touches all strategies alike. The report pools
// the repeats of a strategy: latency percentiles over all their samples (≥ 30 questions per
// phase), rates as the mean, and keeps each repeat's own figures, whose spread is printed.

// repeatFigures is one repeat's own result.
type repeatFigures struct {
	ChunksPerSec     float64 `json:"chunksPerSec"`
	RatioToLimit     float64 `json:"ratioToLimit"`
	DocsPerMin       float64 `json:"docsPerMin"`
	EnrichDocsPerMin float64 `json:"enrichedDocsPerMin,omitempty"`
	ChatIngestP95    float64 `json:"chatIngestP95Ms"`
	ChatIdleP95      float64 `json:"chatIdleP95Ms"`
	HealthP99        float64 `json:"healthP99Ms"`
	PeakRSSMiB       float64 `json:"peakRSSMiB"`
}

func figuresOf(p *phaseResult) repeatFigures {
	return repeatFigures{ChunksPerSec: p.ChunksPerSec, RatioToLimit: p.RatioToLimit, DocsPerMin: p.DocsPerMin,
		EnrichDocsPerMin: p.EnrichDocsPerMin, ChatIngestP95: p.ChatIngest.P95, ChatIdleP95: p.ChatIdle.P95,
		HealthP99: p.Health.P99, PeakRSSMiB: p.PeakRSSMiB}
}

// poolRepeats merges the repeats of each (NUM_PARALLEL, strategy) into one result, in order of
// first appearance. The first repeat's timeline is kept for the plot.
func poolRepeats(phases []*phaseResult) []*phaseResult {
	type key struct {
		np    int
		strat string
	}
	groups := map[key][]*phaseResult{}
	var order []key
	for _, p := range phases {
		k := key{p.NumParallel, p.Strategy}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], p)
	}
	out := make([]*phaseResult, 0, len(order))
	for _, k := range order {
		out = append(out, pool(groups[k]))
	}
	return out
}

func pool(rs []*phaseResult) *phaseResult {
	p := *rs[0]
	p.Repeats = nil
	for _, r := range rs {
		p.Repeats = append(p.Repeats, figuresOf(r))
	}
	if len(rs) == 1 {
		return &p
	}
	mean := func(f func(*phaseResult) float64) float64 {
		var s float64
		for _, r := range rs {
			s += f(r)
		}
		return s / float64(len(rs))
	}
	var health, control, chats []sample
	p.DocsReady, p.DocsFailed, p.DocsTimedOut, p.Docs, p.Chunks, p.Enriched, p.EnrichFailed = 0, 0, 0, 0, 0, 0, 0
	p.Notes, p.Failures = nil, nil
	for i, r := range rs {
		during := func(s sample) bool { return s.T <= r.Timeline.IngestEnd }
		for _, s := range r.Timeline.Health {
			if during(s) {
				health = append(health, s)
			}
		}
		for _, s := range r.control {
			if during(s) {
				control = append(control, s)
			}
		}
		chats = append(chats, r.Timeline.Chat...)
		p.Docs += r.Docs
		p.DocsReady += r.DocsReady
		p.DocsFailed += r.DocsFailed
		p.DocsTimedOut += r.DocsTimedOut
		p.Chunks += r.Chunks
		p.Enriched += r.Enriched
		p.EnrichFailed += r.EnrichFailed
		p.PeakRSSMiB = max(p.PeakRSSMiB, r.PeakRSSMiB)
		p.IdleRSSMiB = max(p.IdleRSSMiB, r.IdleRSSMiB)
		p.InitPeakRSSMiB = max(p.InitPeakRSSMiB, r.InitPeakRSSMiB)
		for _, n := range r.Notes {
			p.Notes = append(p.Notes, fmt.Sprintf("repeat %d: %s", i+1, n))
		}
		for f, n := range r.Failures {
			if p.Failures == nil {
				p.Failures = map[string]int{}
			}
			p.Failures[f] += n
		}
	}
	p.Seconds = mean(func(r *phaseResult) float64 { return r.Seconds })
	p.DocsPerMin = mean(func(r *phaseResult) float64 { return r.DocsPerMin })
	p.ChunksPerSec = mean(func(r *phaseResult) float64 { return r.ChunksPerSec })
	p.LimitChunksPerSec = mean(func(r *phaseResult) float64 { return r.LimitChunksPerSec })
	p.RatioToLimit = mean(func(r *phaseResult) float64 { return r.RatioToLimit })
	p.CPUSeconds = mean(func(r *phaseResult) float64 { return r.CPUSeconds })
	p.EnrichSeconds = mean(func(r *phaseResult) float64 { return r.EnrichSeconds })
	p.EnrichDocsPerMin = mean(func(r *phaseResult) float64 { return r.EnrichDocsPerMin })
	p.InitSeconds = mean(func(r *phaseResult) float64 { return r.InitSeconds })
	p.EmbedCalls = int64(mean(func(r *phaseResult) float64 { return float64(r.EmbedCalls) }))
	p.LoadAvg = [2]float64{rs[0].LoadAvg[0], rs[len(rs)-1].LoadAvg[1]}
	p.Health = summarize(health, nil)
	p.Control = summarize(control, nil)
	p.ChatIngest = summarize(chats, func(s sample) bool { return s.Phase == "ingest" })
	p.ChatIdle = summarize(chats, func(s sample) bool { return s.Phase == "idle" })
	p.TTFTRatio = 0
	if p.ChatIdle.P95 > 0 {
		p.TTFTRatio = p.ChatIngest.P95 / p.ChatIdle.P95
	}
	p.StepsIdle = medianSteps(chats, func(s sample) bool { return s.Phase == "idle" })
	p.StepsIngest = medianSteps(chats, func(s sample) bool { return s.Phase == "ingest" })
	p.StepsIdleSlowest = slowestSteps(chats, func(s sample) bool { return s.Phase == "idle" })
	return &p
}

// spread is "min–max" of a figure over the repeats ("" with one repeat).
func spread(p *phaseResult, f func(repeatFigures) float64, format func(float64) string) string {
	if len(p.Repeats) < 2 {
		return ""
	}
	xs := make([]float64, len(p.Repeats))
	for i, r := range p.Repeats {
		xs[i] = f(r)
	}
	return format(slices.Min(xs)) + "–" + format(slices.Max(xs))
}

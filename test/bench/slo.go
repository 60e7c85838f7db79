package main

import (
	"fmt"
	"strings"
	"time"
)

// sloResult is what an ours+slo-* phase shows: the declared chat TTFT target, the p95 the
// server attained over its window (its own rag_slo_chat_ttft_p95_seconds when the ingest
// ended), and the background throttle's level over the phase.
type sloResult struct {
	TargetSeconds float64 `json:"targetSeconds"`
	// TargetFrom says how the target was chosen (a flag, or from the idle p95 measured before).
	TargetFrom  string  `json:"targetFrom"`
	AttainedP95 float64 `json:"attainedP95Seconds"`
	Samples     int     `json:"samples"`
	// Throttle is the level sampled every 5 s of the phase (from the 0.5 s progress polls).
	Throttle    []float64 `json:"throttle"`
	ThrottleMin float64   `json:"throttleMin"`
	// ThrottleMean is the time-weighted mean over the phase's polls.
	ThrottleMean float64 `json:"throttleMean"`
}

func (s *sloResult) target() time.Duration {
	return time.Duration(s.TargetSeconds * float64(time.Second)).Round(time.Millisecond)
}

// sloFor is the objective of an ours+slo-* phase (nil for any other): the loose target from
// its flag, the tight one from its flag or else 1.2× the idle p95 of ours+enrich on the same
// Ollama, the answer time this machine gives with nothing else running.
func sloFor(cfg config, strat string, enrich *phaseResult) *sloResult {
	switch strat {
	case stratSLOLoose:
		return &sloResult{TargetSeconds: cfg.SLOLoose.Seconds(), TargetFrom: "-slo-loose"}
	case stratSLOTight:
		if cfg.SLOTight > 0 {
			return &sloResult{TargetSeconds: cfg.SLOTight.Seconds(), TargetFrom: "-slo-tight"}
		}
		if enrich != nil && enrich.ChatIdle.P95 > 0 {
			return &sloResult{TargetSeconds: (time.Duration(1.2*enrich.ChatIdle.P95) * time.Millisecond).Seconds(),
				TargetFrom: fmt.Sprintf("1.2× ours+enrich's idle p95 (%s)", fmtMs(enrich.ChatIdle.P95))}
		}
		return &sloResult{TargetSeconds: 1, TargetFrom: "1 s (ours+enrich did not run)"}
	}
	return nil
}

// summarize takes the throttle's course from the progress polls.
func (s *sloResult) summarize(prog []progressSample) {
	s.Throttle = nil
	s.ThrottleMin = 0
	next, sum, span := 0.0, 0.0, 0.0
	for i, p := range prog {
		if p.Throttle <= 0 { // a poll that failed
			continue
		}
		if s.ThrottleMin == 0 || p.Throttle < s.ThrottleMin {
			s.ThrottleMin = p.Throttle
		}
		if p.T >= next {
			s.Throttle = append(s.Throttle, p.Throttle)
			next += 5
		}
		if i+1 < len(prog) {
			dt := prog[i+1].T - p.T
			sum += p.Throttle * dt
			span += dt
		}
	}
	if span > 0 {
		s.ThrottleMean = sum / span
	}
}

func (s *sloResult) met() bool { return s.Samples > 0 && s.AttainedP95 <= s.TargetSeconds }

func throttleCourse(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2g", x)
	}
	return strings.Join(parts, " ")
}

// sloLine is the phase's objective in one line (the bench's progress log).
func sloLine(r *phaseResult) string {
	s := r.SLO
	return fmt.Sprintf("objective chat TTFT p95 ≤ %s: attained %s over %d answers (server), %s during ingest (bench); throttle min %.2f mean %.2f, every 5 s: %s",
		fmtMs(s.TargetSeconds*1000), fmtMs(s.AttainedP95*1000), s.Samples, fmtMs(r.ChatIngest.P95), s.ThrottleMin, s.ThrottleMean, throttleCourse(s.Throttle))
}

// markdownSLO is the objective's table ("" when no ours+slo-* phase ran).
func markdownSLO(r *report) string {
	var b strings.Builder
	for _, p := range r.Phases {
		s := p.SLO
		if s == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| NUM_PARALLEL | phase | chat TTFT p95 target | attained p95 (server, window) | p95 during ingest (bench) | met | throttle min / mean | throttle every 5 s | enriched docs/min | chunks/s |\n")
			b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
		}
		met := map[bool]string{true: "yes", false: "**no**"}[s.met()]
		fmt.Fprintf(&b, "| %d | %s | %s (%s) | %s over %d answers | %s | %s | %.2f / %.2f | %s | %.1f | %.2f |\n",
			p.NumParallel, p.Strategy, fmtMs(s.TargetSeconds*1000), s.TargetFrom, fmtMs(s.AttainedP95*1000), s.Samples,
			fmtMs(p.ChatIngest.P95), met, s.ThrottleMin, s.ThrottleMean, throttleCourse(s.Throttle), p.EnrichDocsPerMin, p.ChunksPerSec)
	}
	return b.String()
}

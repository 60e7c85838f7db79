package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// TestMain lets the test binary serve as the baseline app, as the bench binary does.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "baseline" {
		os.Exit(baselineMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestBenchMiniature runs the whole bench end to end in miniature (3 one-page documents, one
// Ollama) and checks that every phase produced figures and files. It asserts no performance
// target: those are reported by `make bench`, as ratios to baselines measured in the same run.
func TestBenchMiniature(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ollama, the RAG server and the baseline app (-short)")
	}
	if _, err := ollamatest.Binary(); err != nil {
		if os.Getenv(ollamatest.RequireEnv) == "1" {
			t.Fatalf("ollama binary unavailable (%v) and %s=1: run `make ollama`", err, ollamatest.RequireEnv)
		}
		t.Skipf("ollama binary unavailable (%v): run `make ollama` (or set OLLAMA_BIN)", err)
	}
	cfg := defaultConfig()
	cfg.Docs, cfg.Scale = 3, 0.02
	cfg.Repeats = 1                    // TestPoolRepeats covers pooling
	cfg.Phases = []string{phaseIngest} // the scale phase has its own miniature
	cfg.Parallel = []int{2}
	cfg.SLO = false // TestBenchSLOMiniature
	cfg.IdleChats = 2
	cfg.ChatInterval = time.Second
	cfg.LimitChunks = 8
	cfg.PhaseTimeout = 3 * time.Minute
	cfg.Out = t.TempDir()
	cfg.Command = "go test ./test/bench -run TestBenchMiniature"
	if testing.Verbose() {
		cfg.Log = os.Stderr
	} else {
		cfg.Log = io.Discard
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// The limit is measured before the first phase and after every attempt of every phase; a
	// phase run while the machine was disturbed gets a second attempt, so there are at least 5.
	if len(rep.Limits) != 1 || len(rep.Limits[0].Runs) < 5 || rep.Limits[0].ChunksPerSec <= 0 {
		t.Errorf("raw limit not measured: %+v", rep.Limits)
	} else {
		for i, r := range rep.Limits[0].Runs {
			if r.Chunks == 0 || r.Error != "" {
				t.Errorf("limit run %d measured nothing: %+v", i, r)
			}
		}
	}
	want := []string{stratOurs, stratSemaphore, stratUnbounded, stratEnrich}
	if len(rep.Phases) != len(want) {
		t.Fatalf("%d phases, want %d", len(rep.Phases), len(want))
	}
	for i, p := range rep.Phases {
		if p.Strategy != want[i] {
			t.Errorf("phase %d is %s, want %s", i, p.Strategy, want[i])
		}
		if p.DocsReady+p.DocsFailed+p.DocsTimedOut != p.Docs || p.Docs != cfg.Docs {
			t.Errorf("%s: ready %d + failed %d + timed out %d != %d documents", p.Strategy, p.DocsReady, p.DocsFailed, p.DocsTimedOut, cfg.Docs)
		}
		if p.DocsReady == 0 || p.Chunks == 0 || p.EmbedCalls == 0 {
			t.Errorf("%s: nothing ingested: %+v", p.Strategy, p)
		}
		if p.Health.N == 0 || p.ChatIdle.N == 0 {
			t.Errorf("%s: no probes: health %+v, idle chat %+v", p.Strategy, p.Health, p.ChatIdle)
		}
		if p.PeakRSSMiB <= 0 {
			t.Errorf("%s: no peak RSS", p.Strategy)
		}
		if runtime.GOOS == "linux" && p.CPUSeconds <= 0 {
			t.Errorf("%s: no CPU time measured during the ingest", p.Strategy)
		}
		t.Logf("%s: %d/%d ready, %.2f chunks/s (%.2f of limit), healthz p99 %s, TTFT idle p95 %s; %s", p.Strategy, p.DocsReady, p.Docs,
			p.ChunksPerSec, p.RatioToLimit, fmtMs(p.Health.P99), fmtMs(p.ChatIdle.P95), p.ChatPath)
	}
	for _, enr := range rep.Phases[3:] {
		if enr.Enriched+enr.EnrichFailed != enr.DocsReady {
			t.Errorf("%s: %d enriched + %d failed, want %d", enr.Strategy, enr.Enriched, enr.EnrichFailed, enr.DocsReady)
		}
	}
	for _, name := range []string{"bench.json", "bench.md", "bench.png"} {
		fi, err := os.Stat(filepath.Join(cfg.Out, name))
		if err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", name, err)
		}
	}
	var back report
	data, _ := os.ReadFile(filepath.Join(cfg.Out, "bench.json"))
	if err := json.Unmarshal(data, &back); err != nil || len(back.Phases) != len(want) {
		t.Errorf("bench.json does not read back: %v", err)
	}
}

// TestBenchSLOMiniature runs the objective's phases alone in miniature (ours+enrich with a
// tight and a loose chat TTFT target): each declares its target and reports the server's
// throttle level over the phase. The level's course is reported, not asserted: it depends on
// this machine's speed.
func TestBenchSLOMiniature(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ollama and the RAG server (-short)")
	}
	if _, err := ollamatest.Binary(); err != nil {
		if os.Getenv(ollamatest.RequireEnv) == "1" {
			t.Fatalf("ollama binary unavailable (%v) and %s=1: run `make ollama`", err, ollamatest.RequireEnv)
		}
		t.Skipf("ollama binary unavailable (%v): run `make ollama` (or set OLLAMA_BIN)", err)
	}
	cfg := defaultConfig()
	cfg.Docs, cfg.Scale, cfg.EnrichDocs = 2, 0.02, 2
	cfg.Repeats = 1
	cfg.Parallel = []int{2}
	cfg.Strategies, cfg.Enrich = nil, false
	cfg.Phases = []string{phaseIngest} // no scale phase
	cfg.SLOTight = time.Millisecond    // unattainable: the throttle goes to its floor
	cfg.IdleChats = 1
	cfg.ChatInterval = time.Second
	cfg.LimitChunks = 4
	cfg.RetryDisturbed = false
	cfg.PhaseTimeout = 3 * time.Minute
	cfg.Out = t.TempDir()
	cfg.Command = "go test ./test/bench -run TestBenchSLOMiniature"
	cfg.Log = io.Discard
	if testing.Verbose() {
		cfg.Log = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Phases) != 2 || rep.Phases[0].Strategy != stratSLOTight || rep.Phases[1].Strategy != stratSLOLoose {
		t.Fatalf("phases %v, want the tight and the loose objective", rep.Phases)
	}
	for _, p := range rep.Phases {
		s := p.SLO
		if s == nil || s.TargetSeconds <= 0 || len(s.Throttle) == 0 || p.DocsReady != cfg.EnrichDocs {
			t.Fatalf("%s: %d/%d ready, objective %+v", p.Strategy, p.DocsReady, p.Docs, s)
		}
		for _, x := range s.Throttle {
			if x < 0.1 || x > 1 {
				t.Errorf("%s: throttle level %v outside [floor 0.1, 1]: %v", p.Strategy, x, s.Throttle)
			}
		}
		t.Logf("%s: %s", p.Strategy, sloLine(p))
	}
	md, _ := os.ReadFile(filepath.Join(cfg.Out, "bench.md"))
	if !strings.Contains(string(md), "## Latency objective") || !strings.Contains(string(md), "| 2 | ours+slo-tight | 1.0 ms (-slo-tight) |") {
		t.Errorf("bench.md lacks the objective's table:\n%s", md)
	}
}

// TestReportFiles renders a synthetic report: JSON that reads back, Markdown with the table and
// goals, a PNG. No Ollama needed.
func TestReportFiles(t *testing.T) {
	r := &report{Machine: machine(), Command: "go run ./test/bench", Settings: settings{NumParallel: []int{1, 4}, Docs: 2},
		Corpus: corpusStats{Docs: 2, Chunks: 10}}
	for _, np := range []int{1, 4} {
		r.Limits = append(r.Limits, limitEntry{NumParallel: np, Batch: 64, ChunksPerSec: 20, Runs: []limitResult{{Chunks: 10, ChunksPerSec: 20}}})
		for i, strat := range []string{stratOurs, stratSemaphore, stratUnbounded, stratEnrich} {
			p := &phaseResult{NumParallel: np, Strategy: strat, Docs: 2, DocsReady: 2, Chunks: 10, Seconds: 2, DocsPerMin: 60, ChunksPerSec: 5,
				LimitChunksPerSec: 20, RatioToLimit: 0.25, Enriched: 2, EnrichSeconds: 4, EnrichDocsPerMin: 30 * float64(np)}
			for k := range 20 {
				p.Timeline.Health = append(p.Timeline.Health, sample{T: float64(k) / 10, Ms: float64(1 + k*i)})
				p.Timeline.Progress = append(p.Timeline.Progress, progressSample{T: float64(k) / 10, Done: k / 10})
			}
			p.Timeline.Chat = []sample{{T: 0.5, Ms: 300, Phase: "ingest"}, {T: 2.5, Ms: 200, Phase: "idle"}, {T: 1, Ms: 60000, Phase: "ingest", Err: "timeout"}}
			p.Timeline.IngestEnd = 2
			p.Health = summarize(p.Timeline.Health, nil)
			p.ChatIngest = summarize(p.Timeline.Chat, func(s sample) bool { return s.Phase == "ingest" })
			p.ChatIdle = summarize(p.Timeline.Chat, func(s sample) bool { return s.Phase == "idle" })
			p.Control = summarize(nil, nil)
			r.Phases = append(r.Phases, p)
		}
		p := &phaseResult{NumParallel: np, Strategy: stratSLOTight, Docs: 2, DocsReady: 2, Chunks: 10, Seconds: 2, ChunksPerSec: 5, EnrichDocsPerMin: 20,
			SLO: &sloResult{TargetSeconds: 0.8, TargetFrom: "-slo-tight", AttainedP95: 1.2, Samples: 9}}
		for k := range 30 {
			p.Timeline.Progress = append(p.Timeline.Progress, progressSample{T: float64(k), Throttle: []float64{1, 0.5, 0.25, 0.1, 0.2, 0.3}[k/5]})
		}
		p.SLO.summarize(p.Timeline.Progress)
		r.Phases = append(r.Phases, p)
	}
	r.Goals = evaluateGoals(r)
	r.Notes = reportNotes(r)
	dir := t.TempDir()
	if _, err := writeResults(r, dir, "bench"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Phases    []phaseResult   `json:"phases"`
		Timelines []phaseTimeline `json:"timelines"`
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("bench.json: %v", err)
	}
	if len(back.Phases) != 10 || len(back.Timelines) != 10 || len(back.Timelines[3].Health) != 20 || back.Phases[0].Control.P99 != -1 {
		t.Errorf("bench.json: %d phases, %d timelines, %+v", len(back.Phases), len(back.Timelines), back.Phases[0].Control)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "bench.md"))
	for _, want := range []string{"| 4 | semaphore-4 |", "the guide's claim", "4.00×", "![latency over time",
		"## Latency objective", "| 1 | ours+slo-tight | 800 ms (-slo-tight) | 1200 ms over 9 answers |", "| **no** | 0.10 / 0.39 | 1 0.5 0.25 0.1 0.2 0.3 |",
		"| chat TTFT p95 idle vs the best baseline's idle (ours, NUM_PARALLEL 1) | ≤ 1.1× | 200 ms vs 200 ms (semaphore-4) = 1.00×"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("bench.md lacks %q", want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "bench.png")); err != nil || fi.Size() < 1000 {
		t.Errorf("bench.png: %v", err)
	}
}

func TestCPUSecondsOfThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/<pid>/stat is Linux's")
	}
	before := cpuSeconds(os.Getpid())
	x := 0
	for start := time.Now(); time.Since(start) < 150*time.Millisecond; {
		x++
	}
	after := cpuSeconds(os.Getpid())
	if after <= before || after-before > 5 {
		t.Errorf("CPU seconds %v then %v around 150 ms of spinning (%d)", before, after, x)
	}
}

// Repeats of a strategy pool into one result: percentiles over every repeat's samples, rates
// as their mean, and each repeat's own figures kept for the spread.
func TestPoolRepeats(t *testing.T) {
	mk := func(cps float64, ingest, idle []float64) *phaseResult {
		p := &phaseResult{NumParallel: 1, Strategy: stratOurs, Docs: 2, DocsReady: 2, ChunksPerSec: cps, PeakRSSMiB: cps * 10}
		for i, ms := range ingest {
			p.Timeline.Chat = append(p.Timeline.Chat, sample{T: float64(i), Ms: ms, Phase: "ingest"})
		}
		for i, ms := range idle {
			p.Timeline.Chat = append(p.Timeline.Chat, sample{T: 100 + float64(i), Ms: ms, Phase: "idle"})
		}
		p.ChatIngest = summarize(p.Timeline.Chat, func(s sample) bool { return s.Phase == "ingest" })
		p.ChatIdle = summarize(p.Timeline.Chat, func(s sample) bool { return s.Phase == "idle" })
		return p
	}
	other := &phaseResult{NumParallel: 1, Strategy: stratSemaphore, ChunksPerSec: 1}
	pooled := poolRepeats([]*phaseResult{mk(2, []float64{100, 200}, []float64{50}), other, mk(4, []float64{300, 400}, []float64{60})})
	if len(pooled) != 2 || pooled[0].Strategy != stratOurs || pooled[1] != nil && pooled[1].Strategy != stratSemaphore {
		t.Fatalf("pooled into %d results", len(pooled))
	}
	p := pooled[0]
	if p.ChatIngest.N != 4 || p.ChatIdle.N != 2 || p.ChatIngest.Max != 400 || p.Docs != 4 || p.ChunksPerSec != 3 || p.PeakRSSMiB != 40 {
		t.Errorf("pooled %+v", p)
	}
	if len(p.Repeats) != 2 || p.Repeats[0].ChunksPerSec != 2 || p.Repeats[1].ChatIngestP95 < 300 {
		t.Errorf("repeats %+v", p.Repeats)
	}
	if got := spread(p, func(f repeatFigures) float64 { return f.ChunksPerSec }, func(v float64) string { return fmt.Sprint(v) }); got != "2–4" {
		t.Errorf("spread %q", got)
	}
}

// TestSlowestSteps: the tail row is the medians over the slowest tenth of the answers with
// steps, at least three, and absent when too few answers leave nothing to compare it with.
func TestSlowestSteps(t *testing.T) {
	var samples []sample
	for i := range 40 {
		samples = append(samples, sample{Ms: float64(i), Phase: "idle", Steps: &answerSteps{PromptTokens: 1000 + i}})
	}
	samples = append(samples, sample{Ms: 999, Phase: "idle", Err: "timeout"}, sample{Ms: 500, Phase: "ingest", Steps: &answerSteps{PromptTokens: 9}})
	idle := func(s sample) bool { return s.Phase == "idle" }
	m := slowestSteps(samples, idle)
	if m == nil || m.N != 4 || m.TTFT != 37 || m.PromptTokens != 1037 {
		t.Fatalf("slowest tenth of 40: %+v, want the 4 slowest (36–39 ms)", m)
	}
	if m := slowestSteps(samples[:5], idle); m != nil {
		t.Errorf("5 answers: %+v, want none (3 slowest of 5 is not a tail)", m)
	}
}

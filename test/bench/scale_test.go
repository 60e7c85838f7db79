package main

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/postgres"
)

func TestScaleRatios(t *testing.T) {
	base := &scaleRun{scaleSetup: scaleSetups[0], DocsPerMin: 60, CPUSeconds: 2,
		ChatIdle: latencyStats{P95: 800}, ChatIngest: latencyStats{P95: math.NaN()}}
	pg1 := &scaleRun{scaleSetup: scaleSetups[1], DocsPerMin: 57, CPUSeconds: 3, ChatIdle: latencyStats{P95: 840}, ChatIngest: latencyStats{P95: 900}}
	pg3 := &scaleRun{scaleSetup: scaleSetups[2], DocsPerMin: 0, CPUSeconds: 6, ChatIdle: latencyStats{P95: 400}}
	got := scaleRatios([]*scaleRun{base, pg1, pg3})
	if len(got) != 2 || got[0].Name != "postgres-1" || got[1].Name != "postgres-3" {
		t.Fatalf("ratios %+v", got)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(got[0].DocsPerMin, 0.95) || !near(got[0].TTFTP95, 1.05) || !near(got[0].CPU, 1.5) {
		t.Errorf("postgres-1: %+v, want docs/min 0.95, TTFT p95 1.05, CPU 1.5", got[0])
	}
	// Nothing measured on either side is no ratio, not 0 or Inf.
	if !math.IsNaN(got[0].TTFTP95Ing) || !math.IsNaN(got[1].DocsPerMin) || !near(got[1].TTFTP95, 0.5) || !near(got[1].CPU, 3) {
		t.Errorf("postgres-3: %+v (ingest TTFT of postgres-1 %v)", got[1], got[0].TTFTP95Ing)
	}
	if scaleRatios([]*scaleRun{base}) != nil {
		t.Error("a baseline alone has no ratios")
	}
}

// TestRotor: round-robin in order for one caller, and an even share for concurrent callers.
func TestRotor(t *testing.T) {
	r := rotor{n: 3}
	var seq []int
	for range 7 {
		seq = append(seq, r.next())
	}
	if want := []int{0, 1, 2, 0, 1, 2, 0}; !slices.Equal(seq, want) {
		t.Errorf("sequence %v, want %v", seq, want)
	}
	one := rotor{n: 1}
	if one.next() != 0 || one.next() != 0 {
		t.Error("one replica gets every turn")
	}
	c := rotor{n: 3}
	counts := make([]int, 3)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 300 {
				i := c.next()
				mu.Lock()
				counts[i]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if !slices.Equal(counts, []int{800, 800, 800}) {
		t.Errorf("2400 concurrent turns split %v", counts)
	}
}

type fakeChat struct{ asked []string }

func (f *fakeChat) ttft(_ context.Context, q string) (answerStart, error) {
	f.asked = append(f.asked, q)
	return answerStart{TTFT: time.Millisecond}, nil
}
func (f *fakeChat) path() string { return "fake" }

func TestRoundRobinChat(t *testing.T) {
	a, b := &fakeChat{}, &fakeChat{}
	rr := newRoundRobinChat([]chatter{a, b})
	for _, q := range []string{"q1", "q2", "q3"} {
		if _, err := rr.ttft(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(a.asked, []string{"q1", "q3"}) || !slices.Equal(b.asked, []string{"q2"}) || !slices.Equal(rr.counts(), []int{2, 1}) {
		t.Errorf("asked %v and %v, counts %v", a.asked, b.asked, rr.counts())
	}
	if !strings.Contains(rr.path(), "round-robin over 2 replicas") {
		t.Errorf("path %q", rr.path())
	}
}

func TestCheckIntegrity(t *testing.T) {
	listed := []listedDoc{
		{ID: "a", Name: "a.txt", Status: "ready", Chunks: 3},
		{ID: "b", Name: "b.txt", Status: "ready", Chunks: 2},
	}
	ok := checkIntegrity([]string{"a", "b"}, listed, []int{2, 2, 2}, map[string]int{"a": 3, "b": 2}, 5)
	if len(ok.Problems) != 0 || ok.ChunksListed != 5 || ok.Upserted != 5 {
		t.Errorf("clean run reported %+v", ok)
	}
	cases := []struct {
		name     string
		accepted []string
		listed   []listedDoc
		replicas []int
		upserted map[string]int
		points   int
		want     string
	}{
		{"lost", []string{"a", "b", "c"}, listed, []int{2}, map[string]int{"a": 3, "b": 2}, 5, "1 acknowledged documents not listed"},
		{"not ready", []string{"a", "b"}, []listedDoc{listed[0], {ID: "b", Name: "b.txt", Status: "processing"}}, []int{2}, map[string]int{"a": 3}, 3, "1 acknowledged documents not ready"},
		{"duplicate row", []string{"a", "b"}, append(listed, listedDoc{ID: "c", Name: "b.txt", Status: "ready"}), []int{3}, map[string]int{"a": 3, "b": 2}, 5, "3 documents listed (3 ids, 2 names) for 2 acknowledged uploads"},
		{"replica behind", []string{"a", "b"}, listed, []int{2, 1, 2}, map[string]int{"a": 3, "b": 2}, 5, "replica 1 lists 1 documents"},
		{"processed twice", []string{"a", "b"}, listed, []int{2}, map[string]int{"a": 6, "b": 2}, 5, "1 documents upserted more than once"},
		{"points off", []string{"a", "b"}, listed, []int{2}, map[string]int{"a": 3, "b": 2}, 7, "7 points in the vector store for 5 chunks"},
		{"orphan", []string{"a", "b"}, listed, []int{2}, map[string]int{"a": 3, "b": 2, "z": 1}, 5, "1 documents with points but no row"},
	}
	for _, tc := range cases {
		ck := checkIntegrity(tc.accepted, tc.listed, tc.replicas, tc.upserted, tc.points)
		if !strings.Contains(strings.Join(ck.Problems, "; "), tc.want) {
			t.Errorf("%s: problems %q, want one containing %q", tc.name, ck.Problems, tc.want)
		}
	}
}

func TestPhasesFlag(t *testing.T) {
	cfg, err := parseFlags([]string{"-phases", "scale", "-docs", "6"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.runs(phaseIngest) || !cfg.runs(phaseScale) || cfg.Name != "scale" {
		t.Errorf("-phases scale: phases %v, name %q", cfg.Phases, cfg.Name)
	}
	cfg, _ = parseFlags([]string{"-phases", "scale", "-name", "x"}, io.Discard)
	if cfg.Name != "x" {
		t.Errorf("-name given: %q", cfg.Name)
	}
	cfg, _ = parseFlags(nil, io.Discard)
	if !cfg.runs(phaseIngest) || !cfg.runs(phaseScale) || cfg.Name != "bench" {
		t.Errorf("defaults: phases %v, name %q", cfg.Phases, cfg.Name)
	}
	if _, err := parseFlags([]string{"-phases", "slo"}, io.Discard); err == nil {
		t.Error("unknown phase accepted")
	}
}

// TestScaleReportFiles: a scale-only run writes scale.json that reads back (NaN as -1) and
// scale.md with the ratios, and no plot.
func TestScaleReportFiles(t *testing.T) {
	runs := []*scaleRun{
		{scaleSetup: scaleSetups[0], Docs: 2, Ready: 2, DocsPerMin: 60, CPUSeconds: 1, ChatIdle: latencyStats{N: 30, P50: 500, P95: 800}, ChatIngest: summarize(nil, nil),
			UploadsByReplica: []int{2}, IngestedByReplica: []int{2}, QuestionsByReplica: []int{31}},
		{scaleSetup: scaleSetups[2], Docs: 2, Ready: 2, DocsPerMin: 60, CPUSeconds: 1.2, ChatIdle: latencyStats{N: 30, P50: 500, P95: 880},
			ChatIngest:       latencyStats{N: 5, Errors: 2, NoContext: 1, P50: 900, P95: 60000},
			UploadsByReplica: []int{1, 1, 0}, IngestedByReplica: []int{0, 1, 1}, QuestionsByReplica: []int{11, 10, 10},
			Check: integrity{Problems: []string{"1 documents upserted more than once (processed twice)"}}},
	}
	s := &scaleResult{NumParallel: 4, Docs: 2, Questions: 30, Runs: runs, Ratios: scaleRatios(runs)}
	s.Notes = scaleNotes(s)
	r := &report{Machine: machine(), Command: "go run ./test/bench -phases scale", Scale: s, Corpus: corpusStats{Docs: 2}}
	dir := t.TempDir()
	if _, err := writeResults(r, dir, "scale"); err != nil {
		t.Fatal(err)
	}
	var back report
	data, _ := os.ReadFile(filepath.Join(dir, "scale.json"))
	if err := json.Unmarshal(data, &back); err != nil || back.Scale == nil || len(back.Scale.Runs) != 2 || back.Scale.Ratios[0].TTFTP95Ing != -1 {
		t.Fatalf("scale.json does not read back: %v\n%s", err, data)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "scale.md"))
	for _, want := range []string{"## Scale", "| postgres-3 | 60.0 | 1.00× | 500 ms / 880 ms (30) | 1.10× |", "1+1+0 / 0+1+1 / 11+10+10", "900 ms / 60.0 s (5, 2 failed, 1 without context)", "**1 documents upserted more than once", "not whether they speed anything up", "A small run (2 documents"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("scale.md lacks %q:\n%s", want, md)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "scale.png")); err == nil {
		t.Error("a plot without ingest phases")
	}
	// After the ingest phases a scale phase that could not run is a line, not a lost report.
	if md := scaleMarkdown(&scaleResult{Error: "scale: PostgreSQL: no binaries\nmore"}); md != "## Scale\n\nNot measured: `scale: PostgreSQL: no binaries`.\n" {
		t.Errorf("not measured: %q", md)
	}
}

// TestScaleMiniature runs the scale phase alone in miniature (3 one-page documents, 2
// questions per run) on a real Ollama and PostgreSQL and checks that every run ingested
// everything exactly once and wrote its files. It asserts no performance figure.
func TestScaleMiniature(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ollama, PostgreSQL and five RAG servers (-short)")
	}
	if _, err := ollamatest.Binary(); err != nil {
		if os.Getenv(ollamatest.RequireEnv) == "1" {
			t.Fatalf("ollama binary unavailable (%v) and %s=1: run `make ollama`", err, ollamatest.RequireEnv)
		}
		t.Skipf("ollama binary unavailable (%v): run `make ollama` (or set OLLAMA_BIN)", err)
	}
	if _, err := postgres.BinDir(); err != nil {
		if os.Getenv(postgres.RequireEnv) == "1" {
			t.Fatalf("%v and %s=1", err, postgres.RequireEnv)
		}
		t.Skip(err)
	}
	cfg, err := parseFlags([]string{"-phases", "scale", "-docs", "3", "-scale", "0.02", "-parallel", "2", "-scale-questions", "2",
		"-chat-interval", "5s", "-out", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = io.Discard
	if testing.Verbose() {
		cfg.Log = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Scale
	if s == nil || len(s.Runs) != len(scaleSetups) || len(s.Ratios) != len(scaleSetups)-1 || len(rep.Phases) != 0 {
		t.Fatalf("scale result %+v, %d ingest phases", s, len(rep.Phases))
	}
	for i, r := range s.Runs {
		if r.Ready != 3 || len(r.Check.Problems) > 0 || r.Check.Points == 0 || r.ChatIdle.N != 2 {
			t.Errorf("%s: %d/3 ready, %d points, %d idle questions, problems %q", r.Name, r.Ready, r.Check.Points, r.ChatIdle.N, r.Check.Problems)
		}
		if len(r.UploadsByReplica) != scaleSetups[i].Replicas || len(r.Check.ListedByReplica) != scaleSetups[i].Replicas {
			t.Errorf("%s: uploads %v, listed %v for %d replicas", r.Name, r.UploadsByReplica, r.Check.ListedByReplica, scaleSetups[i].Replicas)
		}
	}
	if up := s.Runs[2].UploadsByReplica; !slices.Equal(up, []int{1, 1, 1}) {
		t.Errorf("3 uploads round-robin over 3 replicas: %v", up)
	}
	for _, name := range []string{"scale.json", "scale.md"} {
		if fi, err := os.Stat(filepath.Join(cfg.Out, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", name, err)
		}
	}
}

package drills

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// writeReport writes reliability.json and reliability.md into dir (make drills: docs/).
//
// Drills of earlier runs in dir's reliability.json that this run did not repeat are kept (a
// drill rerun alone replaces its own row), so each row says when it was measured.
func writeReport(dir string, passed bool) error {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results := mergeResults(filepath.Join(dir, "reliability.json"), results)
	js, err := json.MarshalIndent(struct {
		Generated string   `json:"generated"`
		Passed    bool     `json:"passed"` // the last run
		CPUs      int      `json:"cpus"`
		Results   []Result `json:"results"`
	}{time.Now().UTC().Format(time.RFC3339), passed, runtime.NumCPU(), results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "reliability.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Reliability: fault drills

Written by the drills themselves (test/drills; %d CPUs; each row says when it was measured and
with how many documents: `+"`make drills`"+` sets 40 per drill (`+"`RAG_DRILL_DOCS`"+`, 12 without it),
and the rag-server SIGKILL drill always has at least 40). Each drill
runs the real rag-server binary, a real Ollama %s with the tiny generated models, and the Qdrant
gRPC double; summaries are off (`+"`--enrich=false`"+`: the drills are about documents). A fault is
injected while documents ingest (at least two ready, others queued or in work), held, and taken
away; then every acknowledged upload (202) must end ready, or failed with a reason, with no
stretch of %s in which no document settles (a queue that stops moving is stuck) and within %s
in all.
Every drill asserts 0 lost, 0 duplicated, 0 stuck and 0 failed (the documents are valid).

- **acknowledged**: uploads answered 202; uploads refused during the fault (an error, not 202)
  are counted apart and sent again once the fault is gone.
- **lost**: an acknowledged document not listed, or ready with fewer points than chunks.
- **duplicated**: more than one row for a file, more points than chunks for a document, or
  points in the collection beyond the ready documents' chunks.
- **re-upserted chunks**: chunk upserts beyond one per chunk, from the Qdrant double's
  per-document counter: the work repeated for documents in flight at the fault (their points are
  overwritten under the same ids, so nothing is duplicated).
- **time to recover**: from the fault taken away (server restarted, Ollama or Qdrant back,
  model re-created, space freed, directory writable) until every acknowledged document settled.
  It includes ingesting every document still queued, so it is mostly the machine's embedding
  throughput: the **load** column is the machine's 1/5/15-minute load average when the drill
  ended (the embeddings run on the CPU).

| drill | documents | acknowledged | refused during fault | ready | failed (reason) | lost | duplicated | stuck | re-upserted chunks | time to recover | load | measured (UTC) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
`, runtime.NumCPU(), "v0.24.0", stallBound, settleMax)
	for _, r := range results {
		if !r.Done {
			fmt.Fprintf(&b, "| %s | — | — | — | — | — | — | — | — | — | %s | | |\n", r.Drill, r.Note)
			continue
		}
		failed := fmt.Sprint(r.Failed)
		if len(r.FailReasons) > 0 {
			failed += " (" + strings.Join(r.FailReasons, "; ") + ")"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s | %d | %d | %d | %d | %.1f s | %s | %s |\n",
			r.Drill, r.Documents, r.Acknowledged, r.Refused, r.Ready, failed, r.Lost, r.Duplicated, r.Stuck, r.Reupserted, r.RecoverSeconds, r.LoadAverage,
			strings.Replace(strings.TrimSuffix(r.Measured, "Z"), "T", " ", 1))
	}
	var cmds []string
	for _, r := range results {
		if r.Command != "" && !slices.Contains(cmds, r.Command) {
			cmds = append(cmds, r.Command)
		}
	}
	if len(cmds) > 0 {
		fmt.Fprintf(&b, "\nMeasured with `%s` (as root: the disk-full drill mounts a tmpfs, the read-only one runs the server as nobody).\n", strings.Join(cmds, "`, `"))
	}
	if !passed {
		b.WriteString("\n**This run failed**: see the test output; a drill stopped before its check has no row.\n")
	}
	b.WriteString("\nThe faults:\n\n")
	for _, r := range results {
		fmt.Fprintf(&b, "- **%s**: %s.\n", r.Drill, r.Fault)
	}
	b.WriteString("\nFigures: [reliability.json](reliability.json). Rerun: `make drills`.\n")
	return os.WriteFile(filepath.Join(dir, "reliability.md"), []byte(b.String()), 0o644)
}

// drillOrder is the order of the report's rows.
var drillOrder = []string{"rag-server SIGKILL", "Ollama SIGKILL", "Qdrant unreachable", "disk full", "data dir read-only",
	"embedding model removed", "operator killed mid-rollout", "50 concurrent uploads of one file"}

// mergeResults adds to this run's results the drills of an earlier report (path) that this run
// did not measure, in drillOrder.
func mergeResults(path string, now []Result) []Result {
	byDrill := map[string]Result{}
	var old struct {
		Results []Result `json:"results"`
	}
	if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &old) == nil {
		for _, r := range old.Results {
			byDrill[r.Drill] = r
		}
	}
	for _, r := range now {
		if prev, ok := byDrill[r.Drill]; ok && !r.Done && prev.Done {
			continue // a placeholder never replaces figures
		}
		byDrill[r.Drill] = r
	}
	var out []Result
	for _, name := range drillOrder {
		if r, ok := byDrill[name]; ok {
			out = append(out, r)
			delete(byDrill, name)
		}
	}
	for _, r := range now { // drills not in drillOrder, in run order
		if _, ok := byDrill[r.Drill]; ok {
			out = append(out, r)
		}
	}
	return out
}

// runCommand is the command line of this run, as a reader would type it again.
func runCommand() string {
	cmd := fmt.Sprintf("RAG_DRILLS=1 RAG_DRILL_DOCS=%d go test ./test/drills -count=1 -v", docsPerDrill())
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		cmd += fmt.Sprintf(" -run '%s'", f.Value.String())
	}
	return cmd
}

package drills

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// writeReport writes reliability.json and reliability.md into dir (make drills: docs/).
func writeReport(dir string) error {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	js, err := json.MarshalIndent(struct {
		Generated string   `json:"generated"`
		Documents int      `json:"documentsPerDrill"`
		CPUs      int      `json:"cpus"`
		Results   []Result `json:"results"`
	}{time.Now().UTC().Format(time.RFC3339), docsPerDrill(), runtime.NumCPU(), results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "reliability.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Reliability: fault drills

Written by `+"`make drills`"+` (test/drills, %d documents per drill, %d CPUs, %s); the same tests
run in `+"`make test`"+` with 12 documents. Each drill runs the real rag-server binary, a real
Ollama %s with the tiny generated models, and the Qdrant gRPC double; summaries are off
(`+"`--enrich=false`"+`: the drills are about documents). A fault is injected while documents
ingest (at least two ready, others queued or in work), held, and taken away; then every
acknowledged upload (202) must end ready, or failed with a reason, within %s.

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

| drill | acknowledged | refused during fault | ready | failed (reason) | lost | duplicated | stuck | re-upserted chunks | time to recover |
|---|---|---|---|---|---|---|---|---|---|
`, docsPerDrill(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"), "v0.24.0", settleBound)
	for _, r := range results {
		if !r.Done {
			fmt.Fprintf(&b, "| %s | — | — | — | — | — | — | — | — | %s |\n", r.Drill, r.Note)
			continue
		}
		failed := fmt.Sprint(r.Failed)
		if len(r.FailReasons) > 0 {
			failed += " (" + strings.Join(r.FailReasons, "; ") + ")"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %d | %d | %d | %d | %.1f s |\n",
			r.Drill, r.Acknowledged, r.Refused, r.Ready, failed, r.Lost, r.Duplicated, r.Stuck, r.Reupserted, r.RecoverSeconds)
	}
	b.WriteString("\nThe faults:\n\n")
	for _, r := range results {
		fmt.Fprintf(&b, "- **%s**: %s.\n", r.Drill, r.Fault)
	}
	b.WriteString("\nFigures: [reliability.json](reliability.json). Rerun: `make drills`.\n")
	return os.WriteFile(filepath.Join(dir, "reliability.md"), []byte(b.String()), 0o644)
}

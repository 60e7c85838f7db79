package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/testbed/ragproc"
)

// The operator's init container compiles the PDF engine into the data volume first; the server
// then loads it, and its memory never holds the compile's (about 300 MiB when a server compiles
// for itself: see docs/benchmarks/bench.md). A server on a volume the init container prepared
// peaks far below that.
func TestPDFEngineCompiledBeforeTheServerStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the rag-server binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "rag-server")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := ragproc.Build(ctx, bin); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	out, err := exec.CommandContext(ctx, bin, pdfCompileCommand, "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", pdfCompileCommand, err, out)
	}
	entries, _ := os.ReadDir(pdfCacheDir(dataDir))
	if len(entries) == 0 {
		t.Fatalf("%s left nothing in %s:\n%s", pdfCompileCommand, pdfCacheDir(dataDir), out)
	}

	cfg := testConfig(dataDir, "http://127.0.0.1:1") // no Ollama needed: the PDF engine is local
	cfg.Listen = ""                                  // ragproc picks free ports
	os.MkdirAll(filepath.Join(dir, "run"), 0o755)
	p, err := ragproc.Start(ragproc.Options{Binary: bin, Dir: filepath.Join(dir, "run"), Config: cfg, Args: []string{"--insecure-no-auth"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for !metricIs(p.MetricsURL, "rag_pdf_engine_ready", "1") {
		if time.Now().After(deadline) {
			t.Fatalf("PDF engine not ready 30 s after start from a compiled cache:\n%s", p.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	hwm := statusKiB(t, p.PID(), "VmHWM")
	t.Logf("server peak RSS %d MiB with the engine loaded from the cache", hwm>>10)
	if hwm > 150<<10 {
		t.Errorf("server peak RSS %d MiB with the PDF engine loaded from the cache, want under 150 MiB (a compile in the server holds about 300)", hwm>>10)
	}
}

func metricIs(metricsURL, name, value string) bool {
	resp, err := http.Get(metricsURL + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			return f[1] == value
		}
	}
	return false
}

// statusKiB reads a KiB field of /proc/<pid>/status.
func statusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("%s not in /proc/%d/status", field, pid)
	return 0
}

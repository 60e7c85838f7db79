package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// TestSLOMetrics: a server given an objective exports what the operator reads into
// status.slo: the targets, the measured quantiles with their sample counts (the chat p95 is
// the answer the user waited for, the same the TTFT histogram saw) and the background
// throttle level; /healthz is measured by the server's own probe without any client asking.
func TestSLOMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ollama")
	}
	ol := ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2"}})
	keys := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(keys, []byte(fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"}]`, adminToken)), 0o600)
	cfg := testConfig(t.TempDir(), ol.URL)
	cfg.Search.ScoreThreshold = -1 // the tiny embedding model's scores mean nothing: always a model answer
	cfg.SLO = serverconfig.SLO{ChatTTFTP95: "30s", HealthzP99: "100ms", Window: "5m"}
	srv := startServer(t, cfg, keys, false)
	defer srv.stop(t)

	m := sloMetrics(t, srv.metricsURL)
	for series, want := range map[string]float64{
		`rag_slo_target_seconds{objective="chat_ttft_p95"}`: 30,
		`rag_slo_target_seconds{objective="healthz_p99"}`:   0.1,
		`rag_slo_samples{objective="chat_ttft_p95"}`:        0,
		`rag_slo_chat_ttft_p95_seconds`:                     0,
		`rag_background_throttle`:                           1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}

	uploadAll(t, srv.url, corpus(1, 7))
	waitAllReady(t, srv.url, 1, 2*time.Minute)
	var answer struct {
		Answer string `json:"answer"`
	}
	if code := request(t, "POST", srv.url+"/api/chat", strings.NewReader(`{"question":"doc7_0 w1 w2 w3 w4"}`), "application/json", &answer); code != 200 {
		t.Fatalf("chat: %d", code)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		m = sloMetrics(t, srv.metricsURL)
		if m[`rag_slo_samples{objective="healthz_p99"}`] >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := m[`rag_slo_samples{objective="chat_ttft_p95"}`]; n != 1 {
		t.Fatalf("chat samples %v after one answer, want 1", n)
	}
	if p95, h := m["rag_slo_chat_ttft_p95_seconds"], m["rag_chat_time_to_first_token_seconds_sum"]; p95 <= 0 || p95 != h {
		t.Errorf("chat TTFT p95 %v, want the one answer's time to first token (%v)", p95, h)
	}
	if n, p99 := m[`rag_slo_healthz_p99_seconds`], m[`rag_slo_samples{objective="healthz_p99"}`]; n <= 0 || p99 < 2 {
		t.Errorf("healthz p99 %v over %v probes, want a round trip over at least 2", n, p99)
	}
}

// sloMetrics scrapes /metrics into series → value.
func sloMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader([]byte(getBody(t, url+"/metrics"))))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/httpapi"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// TestOllamaPool runs one RAG server on two real Ollama processes (ollama.urls). Both serve a
// share of the embeddings and of the questions; one is stopped in the middle of an ingest and
// every document still becomes ready, on the other, with none failed; the stopped one is
// reported out of rotation, and when it is back it rejoins and takes calls again.
//
// Requests are counted twice: by each Ollama's own request log (GIN lines: the calls that
// reached it and were answered) and by the RAG server's per-server series.
func TestOllamaPool(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Ollama servers")
	}
	env := map[string]string{"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_KEEP_ALIVE": "-1"}
	ol := []*ollamatest.Server{ollamatest.StartWithModels(t, ollamatest.Options{Env: env}), ollamatest.StartWithModels(t, ollamatest.Options{Env: env})}
	keys := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(keys, []byte(fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"}]`, adminToken)), 0o600)
	cfg := testConfig(t.TempDir(), "http://127.0.0.1:1") // url is replaced by urls
	cfg.Ollama.URLs = []string{ol[0].URL, ol[1].URL}
	// Short prompts and answers: the questions are about where they go, not what they say, and
	// a long prefill on a loaded two-core machine would only test its load.
	cfg.Tokens.Response = 24
	cfg.Search.TopK = 2
	cfg.Limits.RagTimeout = "3m"
	srv := startServer(t, cfg, keys, false)
	defer srv.stop(t)

	// Phase 1: both servers up. Six documents, then four questions.
	start := time.Now()
	n1 := uploadAll(t, srv.url, withoutPDF(corpus(7, 1)))
	waitAllReady(t, srv.url, len(n1), 3*time.Minute)
	t.Logf("%d documents ready on two servers in %s", len(n1), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	for i := range 4 {
		if code, _, b := postJSON(t, srv.url+"/api/chat", fmt.Sprintf(`{"question":"doc1_%d w1 w2 w3"}`, i)); code != 200 {
			t.Fatalf("chat: %d %s", code, b)
		}
	}
	t.Logf("4 questions answered in %s", time.Since(start).Round(time.Millisecond))
	embeds := []int{ollamaRequests(t, ol[0], "/api/embed", 0), ollamaRequests(t, ol[1], "/api/embed", 0)}
	chats := []int{ollamaRequests(t, ol[0], "/api/chat", 0), ollamaRequests(t, ol[1], "/api/chat", 0)}
	m := getBody(t, srv.metricsURL+"/metrics")
	t.Logf("answered by each Ollama: /api/embed %v (one warm-up load each included), /api/chat %v; the RAG server's count: embed %v/%v, chat %v/%v",
		embeds, chats, callCount(m, "embed", "0"), callCount(m, "embed", "1"), callCount(m, "chat", "0"), callCount(m, "chat", "1"))
	for i := range 2 {
		// Beyond the start's warm-up load (an empty /api/embed), a share of the real work.
		if embeds[i] < 2 || chats[i] < 1 || callCount(m, "embed", strconv.Itoa(i)) < 1 || callCount(m, "chat", strconv.Itoa(i)) < 1 {
			t.Fatalf("server %d took no share: /api/embed %v, /api/chat %v", i, embeds, chats)
		}
	}

	// Phase 2: fourteen more; server 0 stops once three of them are ready.
	n2 := uploadAll(t, srv.url, withoutPDF(corpus(16, 2)))
	waitReadyAtLeast(t, srv.url, len(n1)+3, 3*time.Minute)
	ol[0].Stop()
	stoppedAt := time.Now()
	embed1AtStop := ollamaRequests(t, ol[1], "/api/embed", 0)
	docs := waitAllReady(t, srv.url, len(n1)+len(n2), 4*time.Minute) // fails on any failed document
	t.Logf("ingest finished %s after server 0 stopped", time.Since(stoppedAt).Round(time.Millisecond))
	after := ollamaRequests(t, ol[1], "/api/embed", 0) - embed1AtStop
	if after < 1 {
		t.Fatalf("server 1 answered no embedding after server 0 stopped")
	}
	t.Logf("after the stop: server 1 answered %d /api/embed", after)
	for _, d := range docs {
		if d.Chunks == 0 {
			t.Fatalf("document %s ready without chunks", d.Name)
		}
	}
	checkPoints(t, srv.app.vec, docs)

	// Health: the whole is up (questions are answered), server 0 is out of rotation.
	waitPart(t, srv.url, "ollama/0", false)
	var deps httpapi.DependenciesResponse
	request(t, "GET", srv.url+"/api/health/dependencies", nil, "", &deps)
	if d := deps.Dependencies[httpapi.DepOllama]; !d.OK {
		t.Fatalf("ollama reported down with one server up: %+v", deps)
	}
	if d := deps.Dependencies["ollama/0"]; d.Address != ol[0].URL || d.Error == "" {
		t.Fatalf("ollama/0: %+v", d)
	}
	if m := getBody(t, srv.metricsURL+"/metrics"); !strings.Contains(m, `rag_dependency_up{dependency="ollama/0"} 0`) ||
		!strings.Contains(m, `rag_dependency_up{dependency="ollama/1"} 1`) || !strings.Contains(m, `rag_dependency_up{dependency="ollama"} 1`) {
		t.Fatal("metrics do not say which server is out")
	}
	if code, _, b := postJSON(t, srv.url+"/api/chat", `{"question":"doc2_3 w1 w2 w3"}`); code != 200 {
		t.Fatalf("chat with one server stopped: %d %s", code, b)
	}

	// Phase 3: server 0 back; it rejoins (after its warm-up) and takes embeddings again.
	logLines := ollamaRequests(t, ol[0], "/api/embed", 0)
	ol[0].Restart()
	waitPart(t, srv.url, "ollama/0", true)
	n3 := uploadAll(t, srv.url, withoutPDF(corpus(4, 3)))
	waitAllReady(t, srv.url, len(n1)+len(n2)+len(n3), 3*time.Minute)
	// The rejoin's warm-up is one empty /api/embed; more means ingest batches.
	if n := ollamaRequests(t, ol[0], "/api/embed", logLines); n < 2 {
		t.Fatalf("server 0 back in rotation answered %d /api/embed (the warm-up alone is 1)", n)
	}
}

// withoutPDF drops the PDFs: on a loaded two-core machine the PDF engine's start-up compile can
// outlast an upload's validation (503), and parsing is not what this test is about.
func withoutPDF(files map[string][]byte) map[string][]byte {
	for name := range files {
		if strings.HasSuffix(name, ".pdf") {
			delete(files, name)
		}
	}
	return files
}

// ollamaRequests counts the requests to path that the server answered 200, from its own log
// (GIN's request lines), skipping the first skip lines that match.
func ollamaRequests(t *testing.T, s *ollamatest.Server, path string, skip int) int {
	t.Helper()
	f, err := os.Open(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "[GIN]") && strings.Contains(l, `"`+path+`"`) && strings.Contains(l, "| 200 |") {
			n++
		}
	}
	return n - skip
}

// callCount is the RAG server's count of HTTP calls to one pool server for op.
func callCount(metrics, op, server string) int {
	prefix := "rag_llm_ollama_request_duration_seconds_count{"
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, `op="`+op+`"`) && strings.Contains(l, `server="`+server+`"`) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			return int(v)
		}
	}
	return 0
}

func waitReadyAtLeast(t *testing.T, url string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ready := 0
		for _, d := range listAll(t, url) {
			if d.Status == "ready" {
				ready++
			}
		}
		if ready >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ready after %s, want %d", ready, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPart waits until the health view reports the pool server in (or out of) rotation.
func waitPart(t *testing.T, url, name string, up bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var deps httpapi.DependenciesResponse
		request(t, "GET", url+"/api/health/dependencies", nil, "", &deps)
		if d, ok := deps.Dependencies[name]; ok && d.OK == up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reported up=%v in 60s: %+v", name, up, deps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/httpapi"
	"github.com/ragstack/rag-operator/internal/parse/testdocs"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/vector"
)

func testConfig(dataDir, ollamaURL string) serverconfig.Config {
	return serverconfig.Config{
		Listen:  "127.0.0.1:0",
		DataDir: dataDir,
		Ollama:  serverconfig.Ollama{URL: ollamaURL, KeepAlive: "-1"},
		Qdrant:  serverconfig.Qdrant{Collection: serverconfig.Collection{Name: "docs", VectorSize: ollamatest.EmbedDim, Distance: "Cosine"}},
		Models: serverconfig.Models{Chat: ollamatest.ChatModel, Embedding: ollamatest.EmbedModel,
			Summary: ollamatest.ChatModel, Tagging: ollamatest.ChatModel},
		Limits: serverconfig.Limits{EmbedConcurrency: 2, EmbedBatchSize: 16, MaxConcurrentProcessing: 3, JobWorkers: 1,
			RagTimeout: "60s", WarmingMaxConcurrentQueries: 1, MaxQueuedDocuments: 1000},
		Tokens:  serverconfig.Tokens{Context: 6000, History: 1500, System: 500, Response: 192, NumCtx: 8192},
		Chunk:   serverconfig.Chunk{Size: 200, Overlap: 40},
		Search:  serverconfig.Search{TopK: 8, ScoreThreshold: 0.3, MaxChunksPerDocument: 3, HNSWEf: 64},
		Uploads: serverconfig.Uploads{MaxFileBytes: 10 << 20, MaxFilesPerRequest: 10, AllowedTypes: []string{"txt", "md", "html", "csv", "pdf", "docx"}},
	}
}

func TestConfigRefusedNamingTheField(t *testing.T) {
	cfg := testConfig(t.TempDir(), "http://127.0.0.1:1")
	cfg.Limits.MaxConcurrentProcessing = 0
	cfg.Chunk.Overlap = 500
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, cfg.Marshal(), 0o600)
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--config", path, "--insecure-no-auth"}, &stderr); code != 2 {
		t.Fatalf("exit %d", code)
	}
	for _, field := range []string{"limits.maxConcurrentProcessing", "chunking.overlap"} {
		if !strings.Contains(stderr.String(), field) {
			t.Errorf("stderr does not name %s: %s", field, stderr.String())
		}
	}
	// No keys file and no --insecure-no-auth: refused too.
	cfg = testConfig(t.TempDir(), "http://127.0.0.1:1")
	os.WriteFile(path, cfg.Marshal(), 0o600)
	stderr.Reset()
	if code := run(context.Background(), []string{"--config", path}, &stderr); code != 2 || !strings.Contains(stderr.String(), "auth.keysFile") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// RAG_CONFIG names the file when --config is absent.
	t.Setenv("RAG_CONFIG", filepath.Join(t.TempDir(), "missing.json"))
	stderr.Reset()
	if code := run(context.Background(), nil, &stderr); code != 2 || !strings.Contains(stderr.String(), "missing.json") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// server is an in-process rag-server on a loopback port.
type server struct {
	url string
	// metricsURL is the metrics listener (metricsListen): /metrics without a key.
	metricsURL string
	app        *app
	cancel     context.CancelFunc
	done       chan error
}

const adminToken = "e2e-admin-token-0123456789"

func startServer(t *testing.T, cfg serverconfig.Config, keysFile string, enrich bool) *server {
	t.Helper()
	cfg.Auth.KeysFile = keysFile
	cfg.MetricsListen = "127.0.0.1:0"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, options{enrich: enrich, keysReload: time.Second, shutdownTimeout: 10 * time.Second, probeInterval: 500 * time.Millisecond}, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{url: "http://" + ln.Addr().String(), metricsURL: "http://" + mln.Addr().String(), app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.serve(ctx, ln, mln) }()
	return s
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("server did not stop in 60s")
	}
}

type doc struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  string `json:"error"`
	Chunks int    `json:"chunks"`
}

func request(t *testing.T, method, url string, body io.Reader, ctype string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

// corpus makes n small documents of mixed types with distinct content. They are small because
// the test embedding model's tiny vocabulary turns a word into ~4 tokens, and it embeds at
// ~2 ms per token on two cores: real documents would only make the test slow.
func corpus(n, seed int) map[string][]byte {
	out := map[string][]byte{}
	para := func(i, words int) string {
		var b strings.Builder
		for w := 0; w < words; w++ {
			fmt.Fprintf(&b, "doc%d_%d w%d ", seed, i, w%97)
			if w%12 == 11 {
				b.WriteString("end. ")
			}
		}
		return b.String()
	}
	for i := 0; i < n; i++ {
		switch i % 6 {
		case 0:
			out[fmt.Sprintf("d%d_%d.txt", seed, i)] = []byte(para(i, 60))
		case 1:
			out[fmt.Sprintf("d%d_%d.md", seed, i)] = []byte("# Title " + fmt.Sprint(i) + "\n" + para(i, 30) + "\n## More\n" + para(i+1000, 30))
		case 2:
			out[fmt.Sprintf("d%d_%d.html", seed, i)] = testdocs.HTML("Page", "Heading", para(i, 50))
		case 3:
			var b strings.Builder
			b.WriteString("id,name,notes\n")
			for r := 0; r < 10; r++ {
				fmt.Fprintf(&b, "%d,item%d_%d,%s\n", r, seed, i, para(i*100+r, 6))
			}
			out[fmt.Sprintf("d%d_%d.csv", seed, i)] = []byte(b.String())
		case 4:
			out[fmt.Sprintf("d%d_%d.docx", seed, i)] = testdocs.DOCX(testdocs.Paragraph{Style: "Heading1", Text: "Report"},
				testdocs.Paragraph{Text: para(i, 30)}, testdocs.Paragraph{Style: "Heading2", Text: "Details"}, testdocs.Paragraph{Text: para(i+500, 30)})
		case 5:
			out[fmt.Sprintf("d%d_%d.pdf", seed, i)] = testdocs.PDF(para(i, 25), para(i+700, 25))
		}
	}
	return out
}

func uploadAll(t *testing.T, url string, files map[string][]byte) []string {
	t.Helper()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	var ids []string
	for len(names) > 0 {
		batch := names[:min(10, len(names))]
		names = names[len(batch):]
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("tags", "e2e")
		for _, n := range batch {
			w, _ := mw.CreateFormFile("file", n)
			w.Write(files[n])
		}
		mw.Close()
		var resp struct {
			IDs   []string          `json:"ids"`
			Files []json.RawMessage `json:"files"`
		}
		if code := request(t, "POST", url+"/api/documents", &b, mw.FormDataContentType(), &resp); code != 202 || len(resp.IDs) != len(batch) {
			t.Fatalf("upload: %d %s", code, resp.Files)
		}
		ids = append(ids, resp.IDs...)
	}
	return ids
}

func listAll(t *testing.T, url string) []doc {
	var out struct {
		Documents []doc `json:"documents"`
		Total     int   `json:"total"`
	}
	request(t, "GET", url+"/api/documents?limit=1000", nil, "", &out)
	return out.Documents
}

func waitAllReady(t *testing.T, url string, want int, timeout time.Duration) []doc {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		docs := listAll(t, url)
		ready := 0
		for _, d := range docs {
			if d.Status == "failed" {
				t.Fatalf("document %s (%s) failed: %s", d.ID, d.Name, d.Error)
			}
			if d.Status == "ready" {
				ready++
			}
		}
		if ready == want && len(docs) == want {
			return docs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ready after %s", ready, want, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkPoints: every document has exactly its chunks as points (none duplicated, none left).
func checkPoints(t *testing.T, vec vector.Store, docs []doc) {
	t.Helper()
	total := 0
	for _, d := range docs {
		n, err := vec.Count(context.Background(), vector.Filter{DocumentIDs: []string{d.ID}})
		if err != nil || n != d.Chunks || n == 0 {
			t.Fatalf("document %s: %d points, %d chunks (%v)", d.Name, n, d.Chunks, err)
		}
		total += n
	}
	if n, _ := vec.Count(context.Background(), vector.Filter{}); n != total {
		t.Fatalf("%d points in all, documents have %d chunks", n, total)
	}
}

// TestEndToEnd runs the whole server against a real Ollama (tiny generated models) and the
// embedded vector store: 50 mixed documents become ready while /healthz keeps answering fast;
// then the server is closed mid-ingest and reopened on the same data directory, and every
// document ends ready exactly once.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ollama")
	}
	ol := ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_KEEP_ALIVE": "-1"}})
	dataDir := t.TempDir()
	keys := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(keys, []byte(fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"}]`, adminToken)), 0o600)
	cfg := testConfig(dataDir, ol.URL)
	srv := startServer(t, cfg, keys, false) // enrichment has its own test: it would dominate here

	// Liveness is polled all through ingest.
	var probeMu sync.Mutex
	var latencies []time.Duration
	var bad atomic.Int64
	stopProbe := make(chan struct{})
	var probeWG sync.WaitGroup
	probe := func(url func() string) {
		defer probeWG.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stopProbe:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			resp, err := client.Get(url() + "/healthz")
			lat := time.Since(start)
			if err != nil {
				continue // the server is being restarted
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				bad.Add(1)
			}
			probeMu.Lock()
			latencies = append(latencies, lat)
			probeMu.Unlock()
		}
	}
	var urlMu sync.Mutex
	currentURL := srv.url
	probeWG.Add(1)
	go probe(func() string { urlMu.Lock(); defer urlMu.Unlock(); return currentURL })

	start := time.Now()
	ids := uploadAll(t, srv.url, corpus(50, 1))
	docs := waitAllReady(t, srv.url, 50, 5*time.Minute)
	t.Logf("50 documents ready in %s", time.Since(start).Round(time.Millisecond))
	checkPoints(t, srv.app.vec, docs)
	if len(ids) != 50 {
		t.Fatalf("%d ids", len(ids))
	}

	// Kill-and-restart: 30 more, the server closed while they are being processed.
	uploadAll(t, srv.url, corpus(30, 2))
	deadline := time.Now().Add(time.Minute)
	for {
		ready := 0
		for _, d := range listAll(t, srv.url) {
			if d.Status == "ready" {
				ready++
			}
		}
		if ready > 52 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.stop(t)
	srv = startServer(t, cfg, keys, false)
	urlMu.Lock()
	currentURL = srv.url
	urlMu.Unlock()
	docs = waitAllReady(t, srv.url, 80, 5*time.Minute)
	checkPoints(t, srv.app.vec, docs)
	close(stopProbe)
	probeWG.Wait()
	// Two cores shared with Ollama at full load: an odd probe waits for the scheduler, but
	// liveness never waits on ingest.
	slices.Sort(latencies)
	n := len(latencies)
	if n < 100 || bad.Load() > 0 {
		t.Fatalf("healthz: %d probes, %d not 200", n, bad.Load())
	}
	p50, p99, worst := latencies[n/2], latencies[n*99/100], latencies[n-1]
	t.Logf("healthz during ingest: %d probes, p50 %s, p99 %s, max %s", n, p50, p99, worst)
	if p99 > 250*time.Millisecond || worst > 2*time.Second {
		t.Fatalf("healthz slow during ingest: p99 %s, max %s", p99, worst)
	}

	// Ready, and each dependency reported up.
	var rz struct{ Status string }
	if code := request(t, "GET", srv.url+"/readyz", nil, "", &rz); code != 200 || rz.Status != "ready" {
		t.Fatalf("readyz %d %+v", code, rz)
	}
	var deps httpapi.DependenciesResponse
	time.Sleep(time.Second)
	request(t, "GET", srv.url+"/api/health/dependencies", nil, "", &deps)
	if deps.Status != "ready" || len(deps.Dependencies) < 3 {
		t.Fatalf("dependencies %+v", deps)
	}
	for _, name := range []string{httpapi.DepOllama, httpapi.DepVector, httpapi.DepStore} {
		if _, ok := deps.Dependencies[name]; !ok {
			t.Fatalf("dependencies lack %s: %+v", name, deps)
		}
	}
	for name, d := range deps.Dependencies {
		if !d.OK {
			t.Fatalf("%s: %+v", name, d)
		}
	}
	srv.stop(t)
}

// TestEnrichmentWithOllama: summaries and auto-tags run on the real chat model after the
// documents are ready; whatever the tiny model answers, each document ends with a recorded
// enrichment outcome and stays ready.
func TestEnrichmentWithOllama(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ollama")
	}
	ol := ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2"}})
	keys := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(keys, []byte(fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"}]`, adminToken)), 0o600)
	srv := startServer(t, testConfig(t.TempDir(), ol.URL), keys, true)
	defer srv.stop(t)
	files := corpus(2, 3)
	uploadAll(t, srv.url, files)
	waitAllReady(t, srv.url, 2, 2*time.Minute)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var out struct {
			Documents []struct {
				Status     string `json:"status"`
				Enrichment *struct {
					Status  string `json:"status"`
					Error   string `json:"error"`
					Summary string `json:"summary"`
				} `json:"enrichment"`
			} `json:"documents"`
		}
		request(t, "GET", srv.url+"/api/documents", nil, "", &out)
		done := 0
		for _, d := range out.Documents {
			if d.Status != "ready" || d.Enrichment == nil {
				t.Fatalf("document %+v", d)
			}
			if d.Enrichment.Status == "done" || d.Enrichment.Status == "failed" {
				done++
			}
		}
		if done == len(out.Documents) {
			for _, d := range out.Documents {
				t.Logf("enrichment %s: summary %q %s", d.Enrichment.Status, d.Enrichment.Summary, d.Enrichment.Error)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d enriched", done, len(out.Documents))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestKillMinus9 builds the binary, SIGKILLs it mid-ingest (no graceful release: documents are
// left "processing") and starts it again on the same data directory: every acknowledged
// upload ends ready exactly once, with exactly its chunks as points.
func TestKillMinus9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server and starts Ollama")
	}
	ol := ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2"}})
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "rag-server")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := testConfig(filepath.Join(tmp, "data"), ol.URL)
	cfg.Listen = addr
	cfg.Auth.KeysFile = filepath.Join(tmp, "keys.json")
	os.WriteFile(cfg.Auth.KeysFile, []byte(fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"}]`, adminToken)), 0o600)
	cfgPath := filepath.Join(tmp, "config.json")
	os.WriteFile(cfgPath, cfg.Marshal(), 0o600)
	logf, _ := os.Create(filepath.Join(tmp, "server.log"))
	defer logf.Close()
	url := "http://" + addr
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--enrich=false")
		cmd.Env = append(os.Environ(), "RAG_CONFIG="+cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if resp, err := http.Get(url + "/healthz"); err == nil {
				resp.Body.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				log, _ := os.ReadFile(logf.Name())
				t.Fatalf("server did not start:\n%s", log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cmd := start()
	uploadAll(t, url, corpus(24, 4))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ready, processing := 0, 0
		for _, d := range listAll(t, url) {
			switch d.Status {
			case "ready":
				ready++
			case "processing":
				processing++
			}
		}
		if (ready >= 3 && processing > 0) || time.Now().After(deadline) {
			t.Logf("killing with %d ready, %d processing", ready, processing)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill() // SIGKILL: no shutdown code runs
	cmd.Wait()

	cmd = start()
	docs := waitAllReady(t, url, 24, 5*time.Minute)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	vec, err := vector.NewMemory(filepath.Join(cfg.DataDir, "vectors"), cfg.Qdrant.Collection)
	if err != nil {
		t.Fatal(err)
	}
	defer vec.Close()
	checkPoints(t, vec, docs)
}

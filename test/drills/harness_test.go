package drills

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
	"github.com/ragstack/rag-operator/internal/testbed/ragproc"
	"github.com/ragstack/rag-operator/internal/vector"
)

// collection is the Qdrant collection every drill uses.
const collection = "documents"

// bed is one drill's stack: a real Ollama with the tiny models, the Qdrant double, and the
// real rag-server binary (internal/testbed/ragproc) on a data directory that survives its
// restarts.
type bed struct {
	t       *testing.T
	ol      *ollamatest.Server
	qd      *qdrantdouble.Server
	vec     *vector.Qdrant
	dir     string
	dataDir string
	url     string
	opts    ragproc.Options

	mu   sync.Mutex
	proc *ragproc.Proc
}

// newBed prepares a drill's stack; cred runs the server as that user (nil: as the test). The
// bed's directory (config, log) is readable by every user, so a server run as nobody can read
// its config: t.TempDir's parent is private to the test's user.
func newBed(t *testing.T, dataDir string, cred *syscall.Credential) *bed {
	t.Helper()
	dir, err := os.MkdirTemp("", "drill-bed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &bed{t: t, dir: dir}
	b.ol = ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_KEEP_ALIVE": "-1"}})
	b.qd = qdrantdouble.Start(t)
	coll := serverconfig.Collection{Name: collection, VectorSize: ollamatest.EmbedDim, Distance: "Cosine"}
	b.vec, err = vector.NewQdrant(context.Background(), vector.QdrantOptions{Addr: b.qd.Address(), Collection: coll,
		SkipCompatibilityCheck: true, CreateIfMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.vec.Close() })
	if err := b.vec.EnsureCollection(context.Background()); err != nil {
		t.Fatal(err)
	}
	if dataDir == "" {
		dataDir = filepath.Join(b.dir, "data")
	}
	b.dataDir = dataDir
	cfg := serverconfig.Default()
	// Fixed addresses: a restarted server answers where the first one did.
	cfg.Listen, cfg.MetricsListen = freeAddr(t), freeAddr(t)
	b.url = "http://" + cfg.Listen
	cfg.DataDir = dataDir
	cfg.Ollama.URL = b.ol.URL
	cfg.Qdrant.Address = b.qd.Address()
	cfg.Qdrant.Collection = coll
	cfg.Models = serverconfig.Models{Chat: ollamatest.ChatModel, Embedding: ollamatest.EmbedModel, Summary: ollamatest.ChatModel, Tagging: ollamatest.ChatModel}
	cfg.Limits.MaxConcurrentProcessing, cfg.Limits.EmbedBatchSize, cfg.Limits.MaxQueuedDocuments = 3, 16, 1000
	// Summaries off: the drills are about documents.
	b.opts = ragproc.Options{Binary: serverBin, Dir: b.dir, Config: cfg, Credential: cred, Wait: 60 * time.Second,
		Args: []string{"--insecure-no-auth", "--enrich=false", "--probe-interval=1s"}}
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			t.Logf("rag-server log, last part:\n%s", tail(filepath.Join(b.dir, "rag-server.log"), 6<<10))
		}
		// RAG_DRILLS_LOGS=dir keeps each drill's server log (the bed's directory is removed).
		if keep := os.Getenv("RAG_DRILLS_LOGS"); keep != "" {
			if data, err := os.ReadFile(filepath.Join(b.dir, "rag-server.log")); err == nil {
				os.WriteFile(filepath.Join(keep, t.Name()+".log"), data, 0o644)
			}
		}
	})
	return b
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs the server and waits for /healthz.
func (b *bed) start() {
	b.t.Helper()
	p, err := ragproc.Start(b.opts)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	b.proc = p
	b.mu.Unlock()
}

// kill sends SIGKILL: no shutdown code runs.
func (b *bed) kill() {
	b.mu.Lock()
	p := b.proc
	b.proc = nil
	b.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// corpus is n distinct text documents of a few chunks each (names drill-<seed>-<i>.txt).
func corpus(n, seed int) map[string][]byte {
	out := map[string][]byte{}
	for i := range n {
		var sb strings.Builder
		fmt.Fprintf(&sb, "Drill document %d of set %d.\n\n", i, seed)
		for p := range 2 {
			for w := range 90 {
				fmt.Fprintf(&sb, "s%dd%dp%dw%d ", seed, i, p, w)
			}
			sb.WriteString("\n\n")
		}
		out[fmt.Sprintf("drill-%d-%03d.txt", seed, i)] = []byte(sb.String())
	}
	return out
}

type fileResult struct {
	File       string `json:"file"`
	Status     int    `json:"status"`
	ID         string `json:"id"`
	ExistingID string `json:"existingId"`
	Error      string `json:"error"`
}

// upload posts one file; it returns the per-file result and the HTTP status (0: no answer). A
// 503 (the key's concurrent-upload bound, a full queue) is retried for up to a minute, as a
// client honouring Retry-After does.
func (b *bed) upload(name string, data []byte) (fileResult, int) {
	deadline := time.Now().Add(time.Minute)
	for {
		r, code := b.uploadOnce(name, data)
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return r, code
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *bed) uploadOnce(name string, data []byte) (fileResult, int) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreateFormFile("file", name)
	w.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", b.url+"/api/documents", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return fileResult{File: name, Error: err.Error()}, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Files []fileResult `json:"files"`
	}
	json.Unmarshal(body, &out)
	if len(out.Files) == 1 {
		return out.Files[0], resp.StatusCode
	}
	return fileResult{File: name, Status: resp.StatusCode, Error: strings.TrimSpace(string(body))}, resp.StatusCode
}

// uploadAll uploads every file one request each, in name order, and returns the acknowledged
// (202) ids by file name and the refused files with their answers.
func (b *bed) uploadAll(files map[string][]byte, acked map[string]string) (refused []fileResult) {
	for _, name := range sortedKeys(files) {
		r, code := b.upload(name, files[name])
		if code == http.StatusAccepted && r.ID != "" {
			acked[name] = r.ID
			continue
		}
		refused = append(refused, r)
	}
	return refused
}

type doc struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  string `json:"error"`
	Chunks int    `json:"chunks"`
}

// list returns every document, or nil when the server does not answer.
func (b *bed) list() []doc {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(b.url + "/api/documents?limit=1000")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out struct {
		Documents []doc `json:"documents"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return nil
	}
	return out.Documents
}

// waitMetric waits up to max for a sample of name whose labels contain label to be at least 1,
// read from the server's metrics listener (no key).
func (b *bed) waitMetric(name, label string, max time.Duration) bool {
	b.mu.Lock()
	p := b.proc
	b.mu.Unlock()
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(p.MetricsURL + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
					if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil && v >= 1 {
						return true
					}
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}

// storageDown waits up to 10 s for the server to report the storage dependency down
// (GET /api/health/dependencies) and returns what it says.
func (b *bed) storageDown() (string, bool) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out struct {
			Dependencies map[string]struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			} `json:"dependencies"`
		}
		if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(b.url + "/api/health/dependencies"); err == nil {
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
		}
		if st, ok := out.Dependencies["storage"]; ok && !st.OK {
			return st.Error, true
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkRefusals asserts that uploads refused while the data volume could not be written got
// 507 and a sentence naming no path of the server's.
func (b *bed) checkRefusals(refused []fileResult) {
	b.t.Helper()
	for _, r := range refused {
		if r.Status != http.StatusInsufficientStorage || r.Error == "" || strings.Contains(r.Error, b.dataDir) || strings.Contains(r.Error, "/tmp") {
			b.t.Errorf("upload %s refused with %d %q, want 507 and a sentence without a path", r.File, r.Status, r.Error)
		}
	}
}

// midIngest waits until at least two documents are ready while others are still queued or in
// work: the moment a fault is injected.
func (b *bed) midIngest(total int) {
	b.t.Helper()
	// Generous: the first embedding loads the model, minutes on a loaded 2-core machine.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ready := 0
		for _, d := range b.list() {
			if d.Status == "ready" {
				ready++
			}
		}
		if ready >= 2 && ready < total {
			return
		}
		if ready >= total {
			b.t.Fatalf("all %d documents were ready before the fault could be injected: use more documents", total)
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("ingest did not start in 5 min (%d ready)", ready)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits until every acknowledged document is ready or failed, and returns the time it
// took. It gives up, and the documents not settled are stuck, when no document settled for
// stall (ingest stopped making progress) or after max in all: how fast documents settle is the
// machine's embedding throughput, which no fixed bound fits on a shared CPU, but a queue that
// stops moving is the failure the drills look for.
func (b *bed) settle(acked map[string]string, stall, max time.Duration) (time.Duration, []doc, bool) {
	start := time.Now()
	lastProgress, settled := start, -1
	for {
		docs := b.list()
		byID := map[string]doc{}
		for _, d := range docs {
			byID[d.ID] = d
		}
		n := 0
		for _, id := range acked {
			if d, ok := byID[id]; ok && (d.Status == "ready" || d.Status == "failed") {
				n++
			}
		}
		if docs != nil && n == len(acked) {
			return time.Since(start), docs, true
		}
		if n > settled {
			settled, lastProgress = n, time.Now()
		}
		if time.Since(lastProgress) > stall || time.Since(start) > max {
			return time.Since(start), docs, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func atoiEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

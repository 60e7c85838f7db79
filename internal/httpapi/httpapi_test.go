package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/ingest"
	"github.com/ragstack/rag-operator/internal/ingest/fakes"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/parse/testdocs"
	"github.com/ragstack/rag-operator/internal/store"
)

const (
	adminTok = "admin-token-0123456789"
	aliceTok = "alice-token-0123456789"
	bobTok   = "bob-token-0123456789ab"
)

var keys = fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"},
 {"name":"alice","token":%q,"role":"user","tags":["hr","finance"]},
 {"name":"bob","token":%q,"role":"user","tags":["hr"]}]`, adminTok, aliceTok, bobTok)

type harness struct {
	t     *testing.T
	dir   string
	st    *store.SQLite
	vec   *fakes.Vector
	llm   *fakes.LLM
	pipe  *ingest.Pipeline
	srv   *httptest.Server
	ready *Readiness
	probe error // the ollama probe's result
	// storeProbe, when set, is the store probe's result instead of pinging the database.
	storeProbe error
	reg        *prometheus.Registry
	cancel     context.CancelFunc
	api        *Server
}

func (h *harness) server() *Server { return h.api }

type option func(*Config)

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), vec: fakes.NewVector(), llm: &fakes.LLM{Dim: 8}, reg: prometheus.NewRegistry()}
	var err error
	if h.st, err = store.Open(context.Background(), h.dir); err != nil {
		t.Fatal(err)
	}
	h.pipe = ingest.New(ingest.Config{Workers: 2, Chunk: chunk.Options{Size: 200, Overlap: 40}, EmbedModel: "e",
		PollInterval: 20 * time.Millisecond, MaxQueued: 100, Logger: quiet}, h.st, sharedParser(), h.llm, h.vec, ingest.NewMetrics(h.reg))
	k, err := auth.NewStatic([]byte(keys))
	if err != nil {
		t.Fatal(err)
	}
	h.ready = NewReadiness(time.Hour, time.Second,
		Check{Name: DepStore, Self: true, Probe: func(ctx context.Context) error {
			if h.storeProbe != nil {
				return h.storeProbe
			}
			return h.st.Ping(ctx)
		}},
		Check{Name: DepOllama, Probe: func(context.Context) error { return h.probe }})
	cfg := Config{MaxFileBytes: 64 << 10, MaxFiles: 5, AllowedTypes: []string{"txt", "md", "html", "csv", "pdf", "docx"}, MaxQueued: 100,
		MinFreeBytes: -1}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg, Deps{Store: h.st, Pipeline: h.pipe, Validator: sharedParser(), Auth: k, Ready: h.ready, Registry: h.reg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h.api = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.pipe.Run(ctx); close(done) }()
	h.cancel = func() { cancel(); <-done }
	h.srv = httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		h.srv.Close()
		h.cancel()
		h.st.Close()
	})
	return h
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sharedParser compiles the PDF engine once per test binary.
var sharedParser = sync.OnceValue(func() *parse.Parser {
	return parse.New(parse.Options{PDFInstances: 2, PDFCacheDir: "/tmp/rag-operator-test-wazero-cache"})
})

type file struct {
	name string
	data []byte
}

func multipartBody(files []file, tags ...string) (io.Reader, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, t := range tags {
		mw.WriteField("tags", t)
	}
	for _, f := range files {
		w, _ := mw.CreateFormFile("file", f.name)
		w.Write(f.data)
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

func (h *harness) do(method, path, token, ctype string, body io.Reader) (*http.Response, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (h *harness) upload(token string, files []file, tags ...string) (int, UploadResponse) {
	h.t.Helper()
	body, ct := multipartBody(files, tags...)
	resp, b := h.do("POST", "/api/documents", token, ct, body)
	var ur UploadResponse
	json.Unmarshal(b, &ur)
	return resp.StatusCode, ur
}

func (h *harness) waitReady(token, id string) Document {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, b := h.do("GET", "/api/documents/"+id, token, "", nil)
		var d Document
		json.Unmarshal(b, &d)
		if resp.StatusCode == 200 && (d.Status == "ready" || d.Status == "failed") {
			if d.Status != "ready" {
				h.t.Fatalf("document %s failed: %s", id, d.Error)
			}
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("document %s: %d %s", id, resp.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNoState checks a rejected upload left no row and no file.
func (h *harness) assertNoState(wantDocs int) {
	h.t.Helper()
	_, total, _ := h.st.List(context.Background(), store.Query{})
	if total != wantDocs {
		h.t.Fatalf("%d documents, want %d", total, wantDocs)
	}
	var files []string
	for _, sub := range []string{"originals", "tmp"} {
		ents, _ := os.ReadDir(filepath.Join(h.dir, sub))
		for _, e := range ents {
			files = append(files, sub+"/"+e.Name())
		}
	}
	if len(files) != wantDocs {
		h.t.Fatalf("files %v, want %d", files, wantDocs)
	}
}

func words(n int, p string) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("%s%d", p, i)
	}
	return strings.Join(w, " ")
}

func TestUploadMixedTypesToReady(t *testing.T) {
	h := newHarness(t)
	files := []file{
		{"notes.txt", []byte(words(300, "t"))},
		{"guide.md", []byte("# Guide\n" + words(100, "m"))},
		{"page.html", testdocs.HTML("Title", "Heading", words(80, "h"))},
		{"table.csv", []byte("name,value\n" + strings.Repeat("alpha,1\nbeta,2\n", 20))},
		{"report.docx", testdocs.DOCX(testdocs.Paragraph{Style: "Heading1", Text: "Report"}, testdocs.Paragraph{Text: words(60, "d")})},
	}
	code, ur := h.upload(adminTok, files, "hr, finance")
	if code != http.StatusAccepted || len(ur.IDs) != 5 {
		t.Fatalf("%d %+v", code, ur)
	}
	for _, f := range ur.Files {
		if f.Status != 202 || f.Document == nil || f.Document.Status != "pending" || strings.Join(f.Document.Tags, ",") != "hr,finance" {
			t.Fatalf("file %+v", f)
		}
	}
	for _, id := range ur.IDs {
		if d := h.waitReady(adminTok, id); d.Chunks == 0 {
			t.Fatalf("document %s has no chunks", id)
		}
	}
	if !testing.Short() {
		code, ur = h.upload(adminTok, []file{{"scan.pdf", testdocs.PDF("First page "+words(40, "p"), "Second page "+words(40, "q"))}})
		if code != 202 {
			t.Fatalf("pdf: %d %+v", code, ur)
		}
		if d := h.waitReady(adminTok, ur.IDs[0]); d.Pages != 2 {
			t.Fatalf("pdf pages %d", d.Pages)
		}
	}
}

func TestUploadRejections(t *testing.T) {
	h := newHarness(t)
	check := func(name string, gotCode, want int) {
		t.Helper()
		if gotCode != want {
			t.Errorf("%s: %d, want %d", name, gotCode, want)
		}
	}
	code, ur := h.upload(adminTok, []file{{"big.txt", bytes.Repeat([]byte("a "), 40<<10)}})
	check("oversize file", code, 413)
	if len(ur.Files) != 1 || ur.Files[0].Status != 413 {
		t.Fatalf("per-file result %+v", ur)
	}
	h.assertNoState(0)

	code, _ = h.upload(adminTok, []file{{"tool.exe", []byte("MZ")}})
	check("disallowed extension", code, 415)
	code, _ = h.upload(adminTok, []file{{"fake.pdf", []byte("hello, not a pdf")}})
	check("pdf that is not a pdf", code, 415)
	code, _ = h.upload(adminTok, []file{{"bin.txt", []byte("\x00\x01\x02ELF")}})
	check("binary txt", code, 415)
	code, _ = h.upload(adminTok, []file{{"broken.docx", []byte("PK\x03\x04 not really a zip")}})
	check("malformed docx", code, 422)
	code, _ = h.upload(adminTok, []file{{"bomb.docx", testdocs.DOCXBomb(2<<20, false)}})
	check("docx bomb", code, 413)
	code, _ = h.upload(adminTok, []file{{"bad.csv", []byte("a,b\n1,\"open")}})
	check("csv", code, 202) // CSV is checked when parsed, not at upload: it fails later with its reason
	h.assertNoState(1)

	resp, _ := h.do("POST", "/api/documents", adminTok, "application/json", strings.NewReader(`{}`))
	check("json to upload", resp.StatusCode, 415)
	resp, _ = h.do("POST", "/api/documents", adminTok, "multipart/form-data; boundary=x", strings.NewReader("garbage"))
	check("broken multipart", resp.StatusCode, 400)
	body, ct := multipartBody(nil, "hr")
	resp, _ = h.do("POST", "/api/documents", adminTok, ct, body)
	check("no file", resp.StatusCode, 400)
	code, _ = h.upload(adminTok, []file{{"a.txt", []byte("x y z w v")}}, "bad<tag>")
	check("bad tag", code, 400)
	six := make([]file, 6)
	for i := range six {
		six[i] = file{fmt.Sprintf("f%d.txt", i), []byte(words(10, fmt.Sprint(i)))}
	}
	code, _ = h.upload(adminTok, six)
	check("too many files", code, 400)
	// A body over the whole-request limit is cut off.
	huge := make([]file, 5)
	for i := range huge {
		huge[i] = file{fmt.Sprintf("h%d.txt", i), append([]byte(fmt.Sprint(i)), bytes.Repeat([]byte(" b"), 31<<10)...)}
	}
	huge = append(huge[:4], file{"extra.txt", bytes.Repeat([]byte("c"), 200<<10)})
	code, ur = h.upload(adminTok, huge)
	// Reading stops at the file over the limit: nothing in the request is stored, and every
	// file says why.
	check("per-file over limit among others", code, 413)
	if len(ur.Files) != 5 || ur.Files[4].Status != 413 || !strings.Contains(ur.Files[0].Error, "extra.txt") {
		t.Fatalf("per-file results %+v", ur)
	}
	h.assertNoState(1)
	code, _ = h.upload(adminTok, huge[:4])
	check("the others alone", code, 202)
	h.assertNoState(5)

	// Auth.
	code, _ = h.upload("", []file{{"a.txt", []byte(words(10, "a"))}})
	check("no key", code, 401)
	code, _ = h.upload("wrong-token-000000000", []file{{"a.txt", []byte(words(10, "a"))}})
	check("bad key", code, 401)
	code, _ = h.upload(bobTok, []file{{"a.txt", []byte(words(10, "a"))}}, "finance")
	check("user with a foreign tag", code, 403)
	h.assertNoState(5)
}

func TestDuplicate(t *testing.T) {
	h := newHarness(t)
	data := []byte(words(50, "dup"))
	code, first := h.upload(adminTok, []file{{"a.txt", data}})
	if code != 202 {
		t.Fatal(code)
	}
	code, ur := h.upload(adminTok, []file{{"copy.txt", data}})
	if code != 409 || ur.Files[0].ExistingID != first.IDs[0] {
		t.Fatalf("%d %+v", code, ur)
	}
	// Two copies in one request: one accepted, one 409 naming it.
	other := []byte(words(50, "other"))
	code, ur = h.upload(adminTok, []file{{"b.txt", other}, {"c.txt", other}})
	if code != 202 || ur.Files[0].Status != 202 || ur.Files[1].Status != 409 || ur.Files[1].ExistingID != ur.Files[0].ID {
		t.Fatalf("%d %+v", code, ur)
	}
	h.assertNoState(2)

	// Tenancy: bob (tag hr) uploading content stored under finance learns nothing of it and
	// gets a document of his own; uploading it again under hr is then a duplicate of his.
	secret := []byte(words(50, "secret"))
	code, fin := h.upload(adminTok, []file{{"fin.txt", secret}}, "finance")
	if code != 202 {
		t.Fatal(code)
	}
	code, ur = h.upload(bobTok, []file{{"mine.txt", secret}})
	if code != 202 || ur.Files[0].ExistingID != "" || ur.IDs[0] == fin.IDs[0] {
		t.Fatalf("bob: %d %+v", code, ur)
	}
	bobs := ur.IDs[0]
	code, ur = h.upload(bobTok, []file{{"again.txt", secret}}, "hr")
	if code != 409 || ur.Files[0].ExistingID != bobs {
		t.Fatalf("bob again: %d %+v", code, ur)
	}
	// The admin may store the same content under a second tag set: another document.
	code, ur = h.upload(adminTok, []file{{"fin2.txt", secret}}, "finance", "shared")
	if code != 202 {
		t.Fatalf("second tag set: %d %+v", code, ur)
	}
	// Deleting bob's leaves the admin's documents and their original intact.
	if resp, b := h.do("DELETE", "/api/documents/"+bobs, bobTok, "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	for _, id := range []string{fin.IDs[0], ur.IDs[0]} {
		d := h.waitReady(adminTok, id)
		if _, err := os.Stat(h.st.OriginalPath(d.SHA256)); err != nil {
			t.Fatalf("original gone with bob's copy: %v", err)
		}
	}
}

func TestQueueFull(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxQueued = 2 })
	h.cancel() // no workers: the queue only fills
	code, _ := h.upload(adminTok, []file{{"a.txt", []byte(words(10, "a"))}, {"b.txt", []byte(words(10, "b"))}, {"c.txt", []byte(words(10, "c"))}})
	if code != 202 {
		t.Fatal(code)
	}
	body, ct := multipartBody([]file{{"d.txt", []byte(words(10, "d"))}})
	resp, _ := h.do("POST", "/api/documents", adminTok, ct, body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d retry-after %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	h.assertNoState(2)
}

func TestRolesAndDocumentRoutes(t *testing.T) {
	h := newHarness(t)
	_, hr := h.upload(aliceTok, []file{{"hr.txt", []byte(words(50, "hr"))}}, "hr")
	_, fin := h.upload(aliceTok, []file{{"fin.txt", []byte(words(50, "fin"))}}) // defaults to alice's tags
	_, adm := h.upload(adminTok, []file{{"secret.txt", []byte(words(50, "s"))}}, "legal")
	for _, id := range []string{hr.IDs[0], fin.IDs[0]} {
		h.waitReady(aliceTok, id)
	}
	h.waitReady(adminTok, adm.IDs[0])

	list := func(token, query string) (int, []Document) {
		resp, b := h.do("GET", "/api/documents"+query, token, "", nil)
		var out struct {
			Documents []Document `json:"documents"`
			Total     int        `json:"total"`
		}
		json.Unmarshal(b, &out)
		return resp.StatusCode, out.Documents
	}
	if _, docs := list(adminTok, ""); len(docs) != 3 {
		t.Fatalf("admin sees %d", len(docs))
	}
	if _, docs := list(bobTok, ""); len(docs) != 2 { // hr.txt and fin.txt (tagged hr+finance)
		t.Fatalf("bob sees %d", len(docs))
	}
	if _, docs := list(adminTok, "?tag=legal&status=ready&name=SECRET"); len(docs) != 1 {
		t.Fatalf("filters: %d", len(docs))
	}
	if code, _ := list(adminTok, "?status=bogus"); code != 400 {
		t.Fatalf("bad status: %d", code)
	}
	if code, _ := list(adminTok, "?limit=-1"); code != 400 {
		t.Fatalf("bad limit: %d", code)
	}
	if resp, _ := h.do("GET", "/api/documents/"+adm.IDs[0], bobTok, "", nil); resp.StatusCode != 404 {
		t.Fatalf("bob reads admin's doc: %d", resp.StatusCode)
	}
	// Bob sees alice's hr document but may not change it.
	if resp, _ := h.do("DELETE", "/api/documents/"+hr.IDs[0], bobTok, "", nil); resp.StatusCode != 403 {
		t.Fatalf("bob deletes alice's doc: %d", resp.StatusCode)
	}
	if resp, _ := h.do("POST", "/api/documents/"+hr.IDs[0]+"/reprocess", bobTok, "", nil); resp.StatusCode != 403 {
		t.Fatalf("bob reprocesses: %d", resp.StatusCode)
	}
	// Alice re-tags her document, within her tags only.
	tagsPath := "/api/documents/" + fin.IDs[0] + "/tags"
	resp, b := h.do("PATCH", tagsPath, aliceTok, "application/json", strings.NewReader(`{"tags":["finance"]}`))
	var d Document
	json.Unmarshal(b, &d)
	if resp.StatusCode != 200 || strings.Join(d.Tags, ",") != "finance" || !d.TagsSynced {
		t.Fatalf("retag %d %s", resp.StatusCode, b)
	}
	for _, p := range h.vec.Chunks(fin.IDs[0]) {
		if strings.Join(p.Tags, ",") != "finance" {
			t.Fatalf("point tags %v", p.Tags)
		}
	}
	if resp, _ := h.do("PATCH", tagsPath, aliceTok, "application/json", strings.NewReader(`{"tags":["legal"]}`)); resp.StatusCode != 403 {
		t.Fatalf("foreign tag: %d", resp.StatusCode)
	}
	// Bad JSON bodies.
	for body, want := range map[string]int{
		`{"tags":`:                 400,
		`{"tags":["a"],"extra":1}`: 400,
		`{"tags":["a"]} {"x":1}`:   400,
		`{}`:                       400,
		`["a"]`:                    400,
		`{"tags":["` + strings.Repeat("a", 70<<10) + `"]}`: 413,
	} {
		if resp, _ := h.do("PATCH", tagsPath, adminTok, "application/json", strings.NewReader(body)); resp.StatusCode != want {
			t.Errorf("PATCH %.30q: %d, want %d", body, resp.StatusCode, want)
		}
	}
	if resp, _ := h.do("PATCH", tagsPath, adminTok, "text/plain", strings.NewReader(`{"tags":[]}`)); resp.StatusCode != 415 {
		t.Fatalf("PATCH text/plain: %d", resp.StatusCode)
	}
	// Reprocess and delete by the owner.
	resp, b = h.do("POST", "/api/documents/"+hr.IDs[0]+"/reprocess", aliceTok, "", nil)
	if resp.StatusCode != 202 {
		t.Fatalf("reprocess %d %s", resp.StatusCode, b)
	}
	h.waitReady(aliceTok, hr.IDs[0])
	if resp, _ := h.do("DELETE", "/api/documents/"+hr.IDs[0], aliceTok, "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete %d", resp.StatusCode)
	}
	if resp, _ := h.do("GET", "/api/documents/"+hr.IDs[0], adminTok, "", nil); resp.StatusCode != 404 {
		t.Fatalf("deleted doc: %d", resp.StatusCode)
	}
	if len(h.vec.Chunks(hr.IDs[0])) != 0 {
		t.Fatal("points left after delete")
	}
	if resp, _ := h.do("DELETE", "/api/documents/no-such-id", adminTok, "", nil); resp.StatusCode != 404 {
		t.Fatalf("delete missing: %d", resp.StatusCode)
	}
}

// TestHealthReadyMetrics: /readyz follows the server itself (the store, draining), never a
// dependency, and tells anonymous callers nothing more than ready or not; the details are behind
// a key, the error texts behind an admin key; metrics carry each dependency's state.
func TestHealthReadyMetrics(t *testing.T) {
	h := newHarness(t)
	if resp, b := h.do("GET", "/readyz", "", "", nil); resp.StatusCode != 503 || string(b) != `{"status":"not ready"}`+"\n" {
		t.Fatalf("readyz before the first probe: %d %s", resp.StatusCode, b)
	}
	h.probe = errors.New("dial tcp 10.0.0.7:11434: connection refused")
	h.ready.ProbeOnce(context.Background())
	if resp, b := h.do("GET", "/readyz", "", "", nil); resp.StatusCode != 200 || string(b) != `{"status":"ready"}`+"\n" {
		t.Fatalf("readyz with Ollama down: %d %s", resp.StatusCode, b)
	}
	deps := func(tok string) DependenciesResponse {
		t.Helper()
		resp, b := h.do("GET", "/api/health/dependencies", tok, "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("dependencies %d %s", resp.StatusCode, b)
		}
		var d DependenciesResponse
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if resp, b := h.do("GET", "/api/health/dependencies", "", "", nil); resp.StatusCode != 401 || strings.Contains(string(b), "10.0.0.7") {
		t.Fatalf("anonymous dependencies %d %s", resp.StatusCode, b)
	}
	d := deps(adminTok)
	ol, st := d.Dependencies[DepOllama], d.Dependencies[DepStore]
	if d.Status != "ready" || ol.OK || !strings.Contains(ol.Error, "10.0.0.7:11434: connection refused") || ol.CheckedAt.IsZero() || !st.OK || st.Error != "" {
		t.Fatalf("admin dependencies %+v", d)
	}
	if ol := deps(aliceTok).Dependencies[DepOllama]; ol.OK || ol.Error != "unavailable" {
		t.Fatalf("user key sees %+v", ol)
	}
	metrics := func() string {
		_, b := h.do("GET", "/metrics", adminTok, "", nil)
		return string(b)
	}
	for _, want := range []string{`rag_dependency_up{dependency="ollama"} 0`, `rag_dependency_up{dependency="store"} 1`, "rag_server_ready 1",
		`rag_dependency_probe_duration_seconds{dependency="ollama"}`} {
		if !strings.Contains(metrics(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	h.probe = nil
	h.ready.ProbeOnce(context.Background())
	if m := metrics(); !strings.Contains(m, `rag_dependency_up{dependency="ollama"} 1`) {
		t.Errorf("ollama back, metrics: %s", m)
	}

	// The store is the server itself: without it, not ready.
	h.storeProbe = errors.New("disk I/O error")
	h.ready.ProbeOnce(context.Background())
	if resp, b := h.do("GET", "/readyz", "", "", nil); resp.StatusCode != 503 || string(b) != `{"status":"not ready"}`+"\n" {
		t.Fatalf("readyz with the store failing: %d %s", resp.StatusCode, b)
	}
	if d := deps(adminTok); d.Status != "not ready" || d.Dependencies[DepStore].Error != "disk I/O error" || !strings.Contains(metrics(), "rag_server_ready 0") {
		t.Fatalf("dependencies with the store failing: %+v", d)
	}
	h.storeProbe = nil
	h.ready.ProbeOnce(context.Background())
	if resp, _ := h.do("GET", "/readyz", "", "", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	h.ready.SetDraining()
	if resp, b := h.do("GET", "/readyz", "", "", nil); resp.StatusCode != 503 || string(b) != `{"status":"not ready"}`+"\n" {
		t.Fatalf("draining readyz %d %s", resp.StatusCode, b)
	}
	if d := deps(adminTok); d.Status != "draining" {
		t.Fatalf("draining dependencies %+v", d)
	}
	h.upload(adminTok, []file{{"a.txt", []byte(words(20, "a"))}})
	b := metrics()
	for _, want := range []string{"rag_http_request_duration_seconds_bucket{code=\"202\",method=\"POST\",route=\"POST /api/documents\"", "rag_ingest_queue_depth", "rag_ingest_chunks_embedded_total"} {
		if !strings.Contains(b, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Liveness answers from memory: even with the database closed.
	h.st.Close()
	if resp, _ := h.do("GET", "/healthz", "", "", nil); resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}

func TestConfigRefusesUnknownType(t *testing.T) {
	_, err := New(Config{MaxFileBytes: 1, MaxFiles: 1, AllowedTypes: []string{"txt", "xlsx"}}, Deps{})
	if err == nil || !strings.Contains(err.Error(), "uploads.allowedTypes") {
		t.Fatalf("err %v", err)
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"../../etc/passwd":                "passwd",
		`C:\Users\x\report.docx`:          "report.docx",
		"a\x00b\nc.txt":                   "abc.txt",
		"...hidden.md":                    "hidden.md",
		"<script>.html":                   "_script_.html",
		"":                                "upload",
		strings.Repeat("é", 150) + ".pdf": strings.Repeat("é", 98) + ".pdf",
	} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

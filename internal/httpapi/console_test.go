package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/ingest/fakes"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/vector"
	"github.com/ragstack/rag-operator/internal/webui"
)

// fakeChunks reads chunks from the fake vector store.
type fakeChunks struct{ v *fakes.Vector }

func (f fakeChunks) GetChunk(_ context.Context, doc string, i int) (vector.Chunk, error) {
	for _, c := range f.v.Chunks(doc) {
		if c.ChunkIndex == i {
			return c, nil
		}
	}
	return vector.Chunk{}, vector.ErrChunkNotFound
}

type fakeLLMStatus struct{ err error }

func (fakeLLMStatus) Pools() []llm.PoolStatus {
	return []llm.PoolStatus{{Pool: "chat", Capacity: 4, BackgroundMax: 3, InFlight: llm.LaneCounts{Interactive: 1}}}
}

func (f fakeLLMStatus) Loaded(context.Context) ([]llm.LoadedModel, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []llm.LoadedModel{{Name: "qwen3:8b", Size: 1 << 30}}, nil
}

// withConsole serves the harness's store and pipeline again, with the console's parts.
func withConsole(h *harness, c *Console) {
	h.t.Helper()
	k, err := auth.NewStatic([]byte(keys))
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := New(Config{MaxFileBytes: 64 << 10, MaxFiles: 5, AllowedTypes: []string{"txt", "md"}, MaxQueued: 100},
		Deps{Store: h.st, Pipeline: h.pipe, Validator: sharedParser(), Auth: k, Ready: h.ready, Logger: quiet, Console: c})
	if err != nil {
		h.t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	h.t.Cleanup(srv.Close)
	h.srv = srv
}

func TestSecurityHeadersAndUI(t *testing.T) {
	h := newHarness(t)
	withConsole(h, nil)
	resp, body := h.do("GET", "/", "", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<script type="module" src="/ui/js/main.js">`) {
		t.Fatalf("GET /: %d %.200s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'", "img-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("UI CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("UI CSP allows inline or eval: %q", csp)
	}
	// No inline script or style in the page (the CSP would block them anyway).
	if strings.Contains(string(body), "<script>") || strings.Contains(string(body), " style=") || strings.Contains(string(body), "<style") {
		t.Error("index.html has inline script or style")
	}
	for _, path := range []string{"/", "/ui/js/main.js", "/api/documents", "/healthz"} {
		resp, _ := h.do("GET", path, "", "", nil)
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, resp.Header.Get("Content-Security-Policy"))
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s sets a cookie", path)
		}
	}
	// Every embedded file is served with a type, compressed on request, and revalidates.
	for _, name := range webui.Files() {
		if name == "index.html" {
			continue
		}
		req, _ := http.NewRequest("GET", h.srv.URL+"/ui/"+name, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") == "" || etag == "" {
			t.Errorf("%s: %d %q %q", name, resp.StatusCode, resp.Header.Get("Content-Type"), etag)
		}
		if strings.HasSuffix(name, ".js") && (resp.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript")) {
			t.Errorf("%s: %q %q", name, resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"))
		}
		req.Header.Set("If-None-Match", etag)
		if resp, _ = http.DefaultTransport.RoundTrip(req); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s revalidated: %d", name, resp.StatusCode)
		}
		resp.Body.Close()
	}
	for _, path := range []string{"/ui/", "/ui/nope.js", "/ui/index.html", "/nope"} {
		if resp, _ := h.do("GET", path, "", "", nil); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	// The API itself is unchanged: no key, 401.
	if resp, _ := h.do("GET", "/api/me", "", "", nil); resp.StatusCode != 401 {
		t.Errorf("/api/me without a key: %d", resp.StatusCode)
	}
}

func TestMe(t *testing.T) {
	h := newHarness(t)
	withConsole(h, nil)
	for tok, want := range map[string]Me{adminTok: {Name: "admin", Role: "admin", Tags: []string{}}, aliceTok: {Name: "alice", Role: "user", Tags: []string{"hr", "finance"}}} {
		_, b := h.do("GET", "/api/me", tok, "", nil)
		var got Me
		json.Unmarshal(b, &got)
		if got.Name != want.Name || got.Role != want.Role || strings.Join(got.Tags, ",") != strings.Join(want.Tags, ",") {
			t.Errorf("me: %s", b)
		}
	}
}

func TestGetChunk(t *testing.T) {
	h := newHarness(t)
	withConsole(h, &Console{Chunks: fakeChunks{h.vec}})
	_, hr := h.upload(aliceTok, []file{{"hr.txt", []byte(words(400, "hr"))}}, "hr")
	_, fin := h.upload(aliceTok, []file{{"fin.txt", []byte(words(50, "fin"))}}, "finance")
	d := h.waitReady(aliceTok, hr.IDs[0])
	h.waitReady(aliceTok, fin.IDs[0])
	if d.Chunks < 2 {
		t.Fatalf("%d chunks", d.Chunks)
	}
	resp, b := h.do("GET", "/api/documents/"+d.ID+"/chunks/1", bobTok, "", nil)
	var c Chunk
	json.Unmarshal(b, &c)
	if resp.StatusCode != 200 || c.DocumentID != d.ID || c.ChunkIndex != 1 || c.Name != "hr.txt" || !strings.Contains(c.Text, "hr") {
		t.Fatalf("chunk: %d %s", resp.StatusCode, b)
	}
	for _, tc := range []struct {
		path, tok string
		code      int
	}{
		{"/api/documents/" + fin.IDs[0] + "/chunks/0", bobTok, 404}, // bob does not see finance
		{"/api/documents/" + fin.IDs[0] + "/chunks/0", aliceTok, 200},
		{"/api/documents/" + d.ID + "/chunks/999", bobTok, 404},
		{"/api/documents/" + d.ID + "/chunks/-1", bobTok, 400},
		{"/api/documents/" + d.ID + "/chunks/x", bobTok, 400},
		{"/api/documents/nope/chunks/0", adminTok, 404},
		{"/api/documents/" + d.ID + "/chunks/0", "", 401},
	} {
		if resp, b := h.do("GET", tc.path, tc.tok, "", nil); resp.StatusCode != tc.code {
			t.Errorf("GET %s: %d %s, want %d", tc.path, resp.StatusCode, b, tc.code)
		}
	}
	// Without a chunk reader: 404, not a crash.
	withConsole(h, nil)
	if resp, _ := h.do("GET", "/api/documents/"+d.ID+"/chunks/0", adminTok, "", nil); resp.StatusCode != 404 {
		t.Errorf("no reader: %d", resp.StatusCode)
	}
}

func TestRenameSession(t *testing.T) {
	h := newHarness(t)
	withConsole(h, nil)
	_, b := h.do("POST", "/api/sessions", aliceTok, "application/json", strings.NewReader(`{"title":"first"}`))
	var s Session
	json.Unmarshal(b, &s)
	resp, b := h.do("PATCH", "/api/sessions/"+s.ID, aliceTok, "application/json", strings.NewReader(`{"title":"  renamed\n "}`))
	var got Session
	json.Unmarshal(b, &got)
	if resp.StatusCode != 200 || got.Title != "renamed" || got.ID != s.ID {
		t.Fatalf("rename: %d %s", resp.StatusCode, b)
	}
	for _, tc := range []struct {
		tok, body, ctype string
		code             int
	}{
		{bobTok, `{"title":"x"}`, "application/json", 404}, // another key's session
		{aliceTok, `{}`, "application/json", 400},
		{aliceTok, `{"title":"x","other":1}`, "application/json", 400},
		{aliceTok, `{"title":"` + strings.Repeat("x", 201) + `"}`, "application/json", 400},
		{aliceTok, `title=x`, "application/x-www-form-urlencoded", 415}, // a cross-site form cannot send JSON
	} {
		if resp, b := h.do("PATCH", "/api/sessions/"+s.ID, tc.tok, tc.ctype, strings.NewReader(tc.body)); resp.StatusCode != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.body, resp.StatusCode, b, tc.code)
		}
	}
}

func TestAdminStatus(t *testing.T) {
	h := newHarness(t)
	h.ready.ProbeOnce(context.Background())
	withConsole(h, &Console{LLM: fakeLLMStatus{}, VectorStore: "embedded", Models: map[string]string{"chat": "qwen3:8b"}})
	h.upload(adminTok, []file{{"a.txt", []byte(words(50, "a"))}})
	resp, b := h.do("GET", "/api/admin/status", adminTok, "", nil)
	var s AdminStatus
	if err := json.Unmarshal(b, &s); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if s.VectorStore != "embedded" || len(s.Pools) != 1 || s.Pools[0].InFlight.Interactive != 1 || s.Models.Configured["chat"] != "qwen3:8b" ||
		len(s.Models.Loaded) != 1 || s.MaxQueued != 100 || len(s.Dependencies) == 0 || len(s.Documents) != 5 {
		t.Fatalf("status %s", b)
	}
	if resp, _ := h.do("GET", "/api/admin/status", aliceTok, "", nil); resp.StatusCode != 403 {
		t.Fatalf("user key: %d", resp.StatusCode)
	}
	// Ollama not answering /api/ps: the rest is still served, with the reason.
	withConsole(h, &Console{LLM: fakeLLMStatus{err: errors.New("connection refused")}})
	_, b = h.do("GET", "/api/admin/status", adminTok, "", nil)
	json.Unmarshal(b, &s)
	if s.Models.LoadedError == "" || len(s.Models.Loaded) != 0 {
		t.Fatalf("status %s", b)
	}
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/httpapi"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// TestOllamaOutageKeepsTheAPI stops the real Ollama under a running server, as an Ollama
// rollout (Recreate, one GPU) does: /readyz stays 200 so the server keeps its Service; the
// document and session routes keep answering; questions get 503 with Retry-After at once. When
// Ollama is back, questions are answered again and the document uploaded during the outage is
// ingested.
func TestOllamaOutageKeepsTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ollama")
	}
	ol := ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_KEEP_ALIVE": "-1"}})
	keys := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(keys, []byte(fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"}]`, adminToken)), 0o600)
	srv := startServer(t, testConfig(t.TempDir(), ol.URL), keys, false)
	defer srv.stop(t)
	ids := uploadAll(t, srv.url, corpus(3, 5))
	waitAllReady(t, srv.url, 3, 2*time.Minute)

	ol.Stop()
	waitDependency(t, srv.url, httpapi.DepOllama, false)

	var rz struct{ Status string }
	if code := request(t, "GET", srv.url+"/readyz", nil, "", &rz); code != 200 || rz.Status != "ready" {
		t.Fatalf("readyz with Ollama stopped: %d %+v", code, rz)
	}
	start := time.Now()
	for _, c := range []struct{ path, body string }{
		{"/api/chat", `{"question":"doc5_0 w1 w2 w3"}`},
		{"/api/chat", `{"question":"doc5_0 w1 w2 w3","stream":true}`},
		{"/v1/chat/completions", `{"model":"qwen3:8b","messages":[{"role":"user","content":"doc5_0 w1"}]}`}, // the configured chat model
	} {
		code, hdr, b := postJSON(t, srv.url+c.path, c.body)
		if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(string(b), "Ollama") {
			t.Fatalf("%s %s with Ollama stopped: %d Retry-After %q %s", c.path, c.body, code, hdr.Get("Retry-After"), b)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("three refusals took %s: they should come from the cached probe", took)
	}

	// Documents: list, get, upload (queued), delete.
	if docs := listAll(t, srv.url); len(docs) != 3 {
		t.Fatalf("list: %d documents", len(docs))
	}
	var d doc
	if code := request(t, "GET", srv.url+"/api/documents/"+ids[0], nil, "", &d); code != 200 || d.Status != "ready" {
		t.Fatalf("get %d %+v", code, d)
	}
	uploadAll(t, srv.url, corpus(1, 6))
	if code := request(t, "DELETE", srv.url+"/api/documents/"+ids[1], nil, "", nil); code != 204 {
		t.Fatalf("delete %d", code)
	}
	// Sessions: create, list, get, delete.
	var ss struct{ ID string }
	if code := request(t, "POST", srv.url+"/api/sessions", strings.NewReader(`{"title":"outage"}`), "application/json", &ss); code != 201 || ss.ID == "" {
		t.Fatalf("create session %d", code)
	}
	for _, path := range []string{"/api/sessions", "/api/sessions/" + ss.ID, "/v1/models"} {
		if code := request(t, "GET", srv.url+path, nil, "", nil); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
	}
	if code := request(t, "DELETE", srv.url+"/api/sessions/"+ss.ID, nil, "", nil); code != 204 {
		t.Fatalf("delete session %d", code)
	}
	if m := getBody(t, srv.metricsURL+"/metrics"); !strings.Contains(m, `rag_dependency_up{dependency="ollama"} 0`) || !strings.Contains(m, "rag_server_ready 1") {
		t.Fatalf("metrics with Ollama stopped lack the dependency state")
	}
	for _, d := range listAll(t, srv.url) {
		if d.Status == "failed" {
			t.Fatalf("document %s failed during the outage: %s", d.Name, d.Error)
		}
	}

	ol.Restart()
	waitDependency(t, srv.url, httpapi.DepOllama, true)
	if code, _, b := postJSON(t, srv.url+"/api/chat", `{"question":"doc5_0 w1 w2 w3"}`); code != 200 {
		t.Fatalf("chat with Ollama back: %d %s", code, b)
	}
	waitAllReady(t, srv.url, 3, 2*time.Minute) // two left of the first three, and the one uploaded during the outage
}

// waitDependency waits until the server's probe reports name up (or down).
func waitDependency(t *testing.T, url, name string, up bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var deps httpapi.DependenciesResponse
		request(t, "GET", url+"/api/health/dependencies", nil, "", &deps)
		if d, ok := deps.Dependencies[name]; ok && d.OK == up && !d.CheckedAt.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reported up=%v in 30s: %+v", name, up, deps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func postJSON(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

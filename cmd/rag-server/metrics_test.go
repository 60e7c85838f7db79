package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMetricsNeedAKeyOrTheMetricsPort: the API port serves /metrics to admin keys only, and
// metricsListen (the port the operator opens to Prometheus) serves it without a key and serves
// nothing but /metrics and /healthz. Anonymous /readyz says ready or not and nothing more.
func TestMetricsNeedAKeyOrTheMetricsPort(t *testing.T) {
	dir := t.TempDir()
	freePort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	api, metrics := freePort(), freePort()
	keys := filepath.Join(dir, "keys.json")
	os.WriteFile(keys, []byte(fmt.Sprintf(`[{"name":"admin","token":%q,"role":"admin"},{"name":"alice","token":"alice-token-0123456789abcdef","role":"user","tags":["hr"]}]`, adminToken)), 0o600)
	cfg := testConfig(filepath.Join(dir, "data"), "http://127.0.0.1:1")
	cfg.Listen, cfg.MetricsListen, cfg.Auth.KeysFile = api, metrics, keys
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, cfg.Marshal(), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--config", path, "--enrich=false"}, &stderr) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	}()

	get := func(url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("http://"+metrics+"/healthz", ""); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics port not answering: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The API port: a key, and an admin one.
	if code, b := get("http://"+api+"/metrics", ""); code != 401 || strings.Contains(b, "rag_") {
		t.Errorf("anonymous /metrics on the API port: %d %.200s", code, b)
	}
	if code, b := get("http://"+api+"/metrics", "alice-token-0123456789abcdef"); code != 403 || strings.Contains(b, "rag_") {
		t.Errorf("user key /metrics on the API port: %d %.200s", code, b)
	}
	if code, b := get("http://"+api+"/metrics", adminToken); code != 200 || !strings.Contains(b, "rag_server_ready") {
		t.Errorf("admin /metrics on the API port: %d %.200s", code, b)
	}
	// The metrics port: no key, the same series; nothing of the API.
	if code, b := get("http://"+metrics+"/metrics", ""); code != 200 || !strings.Contains(b, "rag_server_ready") || !strings.Contains(b, `rag_dependency_up{dependency="store"}`) {
		t.Errorf("/metrics on the metrics port: %d %.200s", code, b)
	}
	for _, p := range []string{"/api/documents", "/readyz", "/api/health/dependencies", "/"} {
		if code, _ := get("http://"+metrics+p, adminToken); code != 404 {
			t.Errorf("%s on the metrics port: %d, want 404", p, code)
		}
	}
	// Anonymous readiness: the verdict only; the details need a key.
	if code, b := get("http://"+api+"/readyz", ""); code != 200 || strings.TrimSpace(b) != `{"status":"ready"}` {
		t.Errorf("anonymous /readyz: %d %s", code, b)
	}
	if code, b := get("http://"+api+"/api/health/dependencies", ""); code != 401 || strings.Contains(b, "127.0.0.1:1") {
		t.Errorf("anonymous dependencies: %d %s", code, b)
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// TestLaptopCommand: the documented `rag-server --config cfg.json --insecure-no-auth --data-dir
// ./data` works with a file that leaves the data directory (and anything else) out: flags and env
// apply before validation, and the file's missing fields take their defaults.
func TestLaptopCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cfg.json")
	os.WriteFile(path, []byte(`{"ollama": {"url": "http://127.0.0.1:1"}, "dataDir": ""}`), 0o600)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "dataDir") {
		t.Fatalf("the file alone should miss dataDir: %v", err)
	}
	// The whole command: it starts, serves until ctx ends, exit 0. The deadline leaves room for
	// opening the store on a loaded machine (300 ms was not enough at load 20).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	if code := run(ctx, []string{"--config", path, "--insecure-no-auth", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0"}, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("data dir from the flag not used: %v", err)
	}
}

// TestNoConfigFile: with no --config, no RAG_CONFIG and no system file, every field is defaulted,
// and env (then flags) apply over the defaults.
func TestNoConfigFile(t *testing.T) {
	if _, err := os.Stat(systemConfig); err == nil {
		t.Skipf("%s exists here", systemConfig)
	}
	t.Setenv("RAG_CONFIG", "")
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != serverconfig.Default().Listen {
		t.Fatalf("%s", cfg.Marshal())
	}
	dir := t.TempDir()
	t.Setenv("RAG_DATA_DIR", filepath.Join(dir, "from-env"))
	t.Setenv("RAG_LISTEN", "127.0.0.1:0")
	t.Setenv("RAG_OLLAMA_URL", "http://127.0.0.1:1")
	// Validation passes (TestLaptopCommand runs a whole start; here the cancelled context stops
	// it right after the config is accepted).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stderr bytes.Buffer
	run(ctx, []string{"--insecure-no-auth"}, &stderr)
	if strings.Contains(stderr.String(), "invalid config (file") {
		t.Fatalf("defaults and env refused: %s", stderr.String())
	}
	ctx = context.Background() // the runs below stop at the config
	// A keys file is still required without --insecure-no-auth, and a bad env value is named.
	stderr.Reset()
	if code := run(ctx, nil, &stderr); code != 2 || !strings.Contains(stderr.String(), "auth.keysFile") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	t.Setenv("RAG_OLLAMA_URL", "not a url")
	stderr.Reset()
	if code := run(ctx, []string{"--insecure-no-auth"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "ollama.url") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// A named file that does not exist is an error, not the defaults.
	stderr.Reset()
	if code := run(ctx, []string{"--config", filepath.Join(dir, "missing.json"), "--insecure-no-auth"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "missing.json") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

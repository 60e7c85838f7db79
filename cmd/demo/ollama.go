package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/testbed/cluster"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// ollamaEnv are the server settings the operator renders for the samples (the DGX Spark
// guide's defaults, Ollama 0.24: OLLAMA_MULTIUSER_CACHE still honoured). The demo compares them
// with the Ollama Deployment the operator created and says so if they differ.
var ollamaEnv = map[string]string{
	"OLLAMA_NUM_PARALLEL":      "4",
	"OLLAMA_MAX_LOADED_MODELS": "3",
	"OLLAMA_FLASH_ATTENTION":   "1",
	"OLLAMA_MULTIUSER_CACHE":   "true",
	"OLLAMA_KEEP_ALIVE":        "24h",
	"OLLAMA_GPU_OVERHEAD":      "536870912",
	"OLLAMA_LOAD_TIMEOUT":      "10m",
}

// ollamaDeviations are rendered settings the local Ollama does not take, with the reason.
var ollamaDeviations = map[string]string{
	"OLLAMA_KV_CACHE_TYPE": "f16 instead of q8_0: the tiny stand-in qwen3 has 16-wide attention heads and ggml's q8_0 cache needs blocks of 32 (its runner aborts); the memory budget still counts q8_0, as rendered",
}

// localOllama is `ollama serve` (the project's CPU build, hack/build-ollama.sh) on a loopback
// port with its own model store, holding tiny generated models under the production base names.
type localOllama struct {
	URL string
	dir string
	cmd *exec.Cmd
	log string
}

func startOllama(ctx context.Context, bin, dir string) (*localOllama, error) {
	addr, err := cluster.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	o := &localOllama{URL: "http://" + addr, dir: dir, log: filepath.Join(dir, "ollama.log")}
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(dir, "models")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logFile, err := os.Create(o.log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OLLAMA_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home, "OLLAMA_MODELS="+filepath.Join(dir, "models"), "OLLAMA_HOST="+addr, "OLLAMA_NO_CLOUD=1")
	for k, v := range ollamaEnv {
		env = append(env, k+"="+v)
	}
	o.cmd = exec.Command(bin, "serve")
	o.cmd.Env = env
	o.cmd.Stdout, o.cmd.Stderr = logFile, logFile
	if err := o.cmd.Start(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(o.URL)
	c := api.NewClient(u, &http.Client{Timeout: time.Second})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Version(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			o.stop()
			return nil, fmt.Errorf("ollama did not answer on %s within 30 s (log: %s)", o.URL, o.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := ollamatest.CreateBaseModels(cctx, api.NewClient(u, http.DefaultClient)); err != nil {
		o.stop()
		return nil, fmt.Errorf("create the base models: %w", err)
	}
	return o, nil
}

func (o *localOllama) stop() {
	if o == nil || o.cmd == nil || o.cmd.Process == nil {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM) // Ollama stops its runners on SIGTERM
	done := make(chan struct{})
	go func() { _ = o.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = o.cmd.Process.Kill()
		<-done
	}
	o.cmd = nil
}

// sortedEnv renders a map as sorted K=V strings.
func sortedEnv(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

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

// startOllama runs `ollama serve` (the project's CPU build, hack/build-ollama.sh) through the
// test bed's Serve, with the settings above, and creates the tiny base models under the
// production names.
func startOllama(ctx context.Context, bin string) (*ollamatest.Server, error) {
	if err := os.Setenv("OLLAMA_BIN", bin); err != nil {
		return nil, err
	}
	srv, err := ollamatest.Serve(ollamatest.Options{Env: ollamaEnv})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := ollamatest.CreateBaseModels(cctx, srv.Client()); err != nil {
		srv.Close()
		return nil, fmt.Errorf("create the base models: %w", err)
	}
	return srv, nil
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

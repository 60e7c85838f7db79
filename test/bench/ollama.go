package main

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// The guide's model variants (§2), created from the generated stand-ins exactly as the
// operator's model Jobs create them (num_thread is left out: this machine has 2 cores, not the
// GB10's 10 performance cores).
var variants = []struct {
	Name, From string
	NumCtx     int
}{
	{chatModel, ollamatest.ChatModel, 8192},
	{embedModel, ollamatest.EmbedModel, 2048},
	{tagModel, ollamatest.ReasoningModel, 16384},
}

const (
	chatModel  = "qwen3-rag"       // chat and summaries
	embedModel = "nomic-embed-rag" // embeddings
	tagModel   = "deepseek-r1-rag" // auto-tags
)

// ollamaEnv is the guide's §1 server settings with NUM_PARALLEL varied, less two:
//   - OLLAMA_KV_CACHE_TYPE stays f16: the tiny stand-in qwen3 has 16-wide heads and ggml's q8_0
//     cache needs blocks of 32;
//   - OLLAMA_MULTIUSER_CACHE only with multiuserCache: with it, Ollama 0.24's llama.cpp runner
//     aborts (GGML_ASSERT "seq_cp() is only supported for full KV buffers") as soon as two
//     requests for a llama-architecture model (deepseek-r1-rag, the tagger) run in parallel at
//     NUM_PARALLEL > 1, which would measure that crash instead of NUM_PARALLEL.
//
// OLLAMA_GPU_OVERHEAD means nothing on a CPU.
func ollamaEnv(numParallel int, multiuserCache bool) map[string]string {
	env := map[string]string{
		"OLLAMA_NUM_PARALLEL":      strconv.Itoa(numParallel),
		"OLLAMA_MAX_LOADED_MODELS": "3",
		"OLLAMA_FLASH_ATTENTION":   "1",
		"OLLAMA_KEEP_ALIVE":        "24h",
		"OLLAMA_LOAD_TIMEOUT":      "10m",
	}
	if multiuserCache {
		env["OLLAMA_MULTIUSER_CACHE"] = "true"
	}
	return env
}

// startOllama runs the project's Ollama build with the guide's settings, creates the models and
// loads all three, so no phase pays a model load.
func startOllama(ctx context.Context, numParallel int, multiuserCache bool) (*ollamatest.Server, map[string]string, error) {
	env := ollamaEnv(numParallel, multiuserCache)
	s, err := ollamatest.Serve(ollamatest.Options{Env: env, ReadyTimeout: time.Minute})
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := prepareModels(cctx, s.Client()); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("ollama models: %w\n%s", err, s.LogTail(4<<10))
	}
	return s, maps.Clone(env), nil
}

func prepareModels(ctx context.Context, c *api.Client) error {
	if err := ollamatest.CreateBaseModels(ctx, c); err != nil {
		return err
	}
	stream := false
	for _, v := range variants {
		req := &api.CreateRequest{Model: v.Name, From: v.From, Stream: &stream, Parameters: map[string]any{"num_ctx": v.NumCtx}}
		if err := c.Create(ctx, req, func(api.ProgressResponse) error { return nil }); err != nil {
			return fmt.Errorf("create %s: %w", v.Name, err)
		}
	}
	forever := &api.Duration{Duration: -1}
	if _, err := c.Embed(ctx, &api.EmbedRequest{Model: embedModel, Input: "warm up", KeepAlive: forever}); err != nil {
		return fmt.Errorf("load %s: %w", embedModel, err)
	}
	think := &api.ThinkValue{Value: false}
	for _, m := range []string{chatModel, tagModel} {
		req := &api.ChatRequest{Model: m, Stream: &stream, Think: think, KeepAlive: forever,
			Messages: []api.Message{{Role: "user", Content: "warm up"}}, Options: map[string]any{"num_predict": 4}}
		if err := c.Chat(ctx, req, func(api.ChatResponse) error { return nil }); err != nil {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	return nil
}

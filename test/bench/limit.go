package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// limitResult is the raw embedding throughput of an Ollama: big /api/embed batches, two calls
// in flight (one running, the next ready), nothing else running.
type limitResult struct {
	Chunks         int     `json:"chunks"`
	Calls          int     `json:"calls"`
	Seconds        float64 `json:"seconds"`
	ChunksPerSec   float64 `json:"chunksPerSec"`
	Batch          int     `json:"batch"`
	TokensPerChunk float64 `json:"modelTokensPerChunk"` // Ollama's prompt_eval_count per input
	Error          string  `json:"error,omitempty"`
}

// measureLimit embeds texts in batches until all are done or budget has passed (batches
// already sent finish).
func measureLimit(ctx context.Context, ollama string, texts []string, batch int, budget time.Duration) limitResult {
	client := probeClient()
	res := limitResult{Batch: batch}
	var next, chunks, calls, tokens atomic.Int64
	var errOnce sync.Once
	start := time.Now()
	nBatches := (len(texts) + batch - 1) / batch
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil && time.Since(start) < budget {
				b := int(next.Add(1)) - 1
				if b >= nBatches {
					return
				}
				in := texts[b*batch : min((b+1)*batch, len(texts))]
				var out struct {
					Embeddings      [][]float32 `json:"embeddings"`
					PromptEvalCount int         `json:"prompt_eval_count"`
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				_, err := postJSON(cctx, client, ollama+"/api/embed", map[string]any{"model": embedModel, "input": in, "truncate": true}, &out)
				cancel()
				calls.Add(1)
				if err != nil {
					errOnce.Do(func() { res.Error = err.Error() })
					return
				}
				chunks.Add(int64(len(out.Embeddings)))
				tokens.Add(int64(out.PromptEvalCount))
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Chunks, res.Calls = int(chunks.Load()), int(calls.Load())
	if res.Seconds > 0 {
		res.ChunksPerSec = float64(res.Chunks) / res.Seconds
	}
	if res.Chunks > 0 {
		res.TokensPerChunk = float64(tokens.Load()) / float64(res.Chunks)
	}
	return res
}

package llm

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// TestPreemptionAgainstRealOllama: on a real Ollama with one slot (NUM_PARALLEL 1), a question
// asked while a summary runs cuts it; Ollama frees the slot (no leak: the cut request was not
// streamed), the question is answered, and the summary, generated in steps that go on after the
// question's first token, ends with the same text as one uncut call. The question's time to first token with and without
// preemption is logged: measured, not asserted (docs/rag-server.md reports what it showed).
func TestPreemptionAgainstRealOllama(t *testing.T) {
	if testing.Short() {
		t.Skip("real Ollama skipped in -short mode")
	}
	srv := ollamatest.Start(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := ollamatest.CreateBaseModel(ctx, srv.Client(), ollamatest.ChatModel); err != nil {
		t.Fatal(err)
	}
	stream := false
	if err := srv.Client().Create(ctx, &api.CreateRequest{Model: "qwen3-rag", From: ollamatest.ChatModel,
		Parameters: map[string]any{"num_ctx": 8192}, Stream: &stream}, func(api.ProgressResponse) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// A long excerpt and a long answer: the summary holds Ollama's one slot for a while.
	long := strings.Repeat("the quick brown fox jumps over the lazy dog ", 250)
	summaries := map[bool]ChatResponse{}
	for _, preempt := range []bool{true, false} {
		t.Run(fmt.Sprintf("preemption=%v", preempt), func(t *testing.T) {
			rec := &recorder{}
			// Steps of one token: the generated model answers three words, so this is what
			// makes several steps (in production a step is stepTokens).
			c := New(Options{BaseURL: rec.proxy(t, srv.URL), BackgroundMax: 1, KeepAlive: -1, MaxYield: time.Minute, stepTokens: 1})
			if preempt {
				c.SetPreemption(3)
			}
			if _, err := c.Chat(ctx, Interactive, ChatRequest{Model: "qwen3-rag", Messages: []Message{{Role: "user", Content: "INTERACTIVE-w"}}, MaxTokens: 4, Think: new(bool)}); err != nil {
				t.Fatal(err)
			}
			summary := make(chan chatResult, 1)
			go func() {
				r, err := c.Chat(ctx, Background, ChatRequest{Model: "qwen3-rag", MaxTokens: 300, Think: new(bool),
					Options:  map[string]any{"temperature": 0, "seed": 1},
					Messages: []Message{{Role: "user", Content: "BACKGROUND-a " + long}}})
				summary <- chatResult{r, err}
			}()
			waitFor(t, func() bool { return rec.count("arrive BACKGROUND-a") == 1 })

			// The answer path: hold (and cut) at the question, release at the first token.
			release := c.HoldBackground()
			start := time.Now()
			var ttft time.Duration
			_, err := c.Chat(ctx, Interactive, ChatRequest{Model: "qwen3-rag", MaxTokens: 8, Think: new(bool),
				Messages: []Message{{Role: "user", Content: "INTERACTIVE-x what does the fox do?"}},
				OnToken: func(string) error {
					if ttft == 0 {
						ttft = time.Since(start)
						rec.add("token INTERACTIVE-x")
						release()
					}
					return nil
				}})
			release()
			if err != nil {
				t.Fatal(err)
			}
			var r chatResult
			select {
			case r = <-summary:
			case <-ctx.Done():
				t.Fatal("the summary did not end")
			}
			if r.err != nil {
				t.Fatalf("summary: %v", r.err)
			}
			rec.mu.Lock()
			events := append([]string(nil), rec.events...)
			rec.mu.Unlock()
			lastDone := -1
			for i, e := range events {
				if e == "done BACKGROUND-a" {
					lastDone = i
				}
			}
			token := rec.index("token INTERACTIVE-x")
			t.Logf("preemption %v: first token after %v; summary %d tokens (%s), sent %d time(s); %v",
				preempt, ttft, r.resp.GeneratedTokens, r.resp.DoneReason, rec.count("arrive BACKGROUND-a"), events)
			if preempt {
				// Steps (several requests), one of them cut by the question, and steps sent after
				// the question's first token.
				if rec.count("arrive BACKGROUND-a") < 3 || token < 0 || token > lastDone {
					t.Fatalf("the summary was not stepped and continued after the question's first token: %v", events)
				}
			} else if rec.count("arrive BACKGROUND-a") != 1 {
				t.Fatalf("without preemption the summary was sent %d times: %v", rec.count("arrive BACKGROUND-a"), events)
			}
			if r.resp.DoneReason == "" {
				t.Fatalf("the summary has no whole answer: %+v", r.resp)
			}
			summaries[preempt] = r.resp
			// Ollama's slot is free again: another answer is served.
			nctx, ncancel := context.WithTimeout(ctx, 2*time.Minute)
			defer ncancel()
			if _, err := c.Chat(nctx, Interactive, ChatRequest{Model: "qwen3-rag", Messages: []Message{{Role: "user", Content: "INTERACTIVE-y"}}, MaxTokens: 4, Think: new(bool)}); err != nil {
				t.Fatalf("the next answer after the cut: %v", err)
			}
		})
	}
	// Resumed steps continue the text exactly: the same words as the one uncut call (greedy
	// decoding), and the same length.
	stepped, whole := summaries[true], summaries[false]
	if stepped.Content != whole.Content || stepped.GeneratedTokens != whole.GeneratedTokens {
		t.Fatalf("stepped and cut summary differs from one uncut call:\nstepped (%d tokens): %q\nwhole   (%d tokens): %q",
			stepped.GeneratedTokens, stepped.Content, whole.GeneratedTokens, whole.Content)
	}
}

package chat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// BenchmarkPrefillByPromptLength measures how the generated test chat model's prefill grows with
// the prompt (Ollama's own prompt_eval_duration, reported as prefill-ms; every prompt is distinct
// so no cache helps). On this tiny model attention dominates, so prefill grows about with the
// square of the length: this is why a few percent more prompt tokens cost twice that in the
// bench's time to first token (README, "Benchmarks"). Run:
//
//	go test ./internal/chat -run '^$' -bench PrefillByPromptLength -benchtime 5x
func BenchmarkPrefillByPromptLength(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	oc := startBenchChatModel(ctx, b, 1, "prefill")
	words := strings.Fields("the of and to in is that it for on with as was at by be this are from or have an not but which one all were they we when there can been has more")
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{400, 800, 1200, 1600, 1800, 2000, 2400} {
		b.Run(fmt.Sprintf("words=%d", n), func(b *testing.B) {
			var total time.Duration
			var tokens int
			for b.Loop() {
				var sb strings.Builder
				fmt.Fprintf(&sb, "%d ", r.IntN(1e9)) // nothing shared with the last prompt past the template
				for range n {
					sb.WriteString(words[r.IntN(len(words))])
					sb.WriteByte(' ')
				}
				f := false
				err := oc.Chat(ctx, &api.ChatRequest{Model: "prefill", Messages: []api.Message{{Role: "user", Content: sb.String()}},
					Stream: &f, Think: &api.ThinkValue{Value: false}, Options: map[string]any{"num_predict": 1}},
					func(x api.ChatResponse) error {
						if x.Done {
							total += x.PromptEvalDuration
							tokens = x.PromptEvalCount
						}
						return nil
					})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "prefill-ms")
			b.ReportMetric(float64(tokens), "tokens")
		})
	}
}

// startBenchChatModel starts a real Ollama with numParallel slots and flash attention, as the
// bench runs it, and creates the generated chat model as variant name with the server's 8192
// window.
func startBenchChatModel(ctx context.Context, b *testing.B, numParallel int, name string) *api.Client {
	srv := ollamatest.Start(b, ollamatest.Options{Env: map[string]string{
		"OLLAMA_NUM_PARALLEL": strconv.Itoa(numParallel), "OLLAMA_FLASH_ATTENTION": "1"}})
	oc := srv.Client()
	if err := ollamatest.CreateBaseModel(ctx, oc, ollamatest.ChatModel); err != nil {
		b.Fatal(err)
	}
	stream := false
	if err := oc.Create(ctx, &api.CreateRequest{Model: name, From: ollamatest.ChatModel, Stream: &stream,
		Parameters: map[string]any{"num_ctx": 8192}}, func(api.ProgressResponse) error { return nil }); err != nil {
		b.Fatal(err)
	}
	return oc
}

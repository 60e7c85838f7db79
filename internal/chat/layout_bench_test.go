package chat

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/testbed/gguf"
)

// baselineSystem and baselineMessages are the prompt of the app this server replaces, as the
// bench's baseline strategies send it (test/bench: ragSystemPrompt, ollamaChatBody): the numbered
// chunk texts appended to the system prompt, the bare question as the user message.
const baselineSystem = "You answer questions using only the numbered sources below. Cite them as [SourceId: doc:chunk]. " +
	"If the sources do not contain the answer, say so."

func baselineMessages(question string, sources []Source) []llm.Message {
	var b strings.Builder
	for i, s := range sources {
		fmt.Fprintf(&b, "[%d] %s\n\n", i+1, s.Text)
	}
	return []llm.Message{{Role: "system", Content: baselineSystem + "\n\n" + b.String()}, {Role: "user", Content: question}}
}

// BenchmarkPromptLayout measures what our prompt layout costs in time to first token against
// the baseline app's, without and with document titles (Layout.DocumentTitles), on the same
// retrieved chunks: eight sources of about 150 words from five
// or six documents (at most three each), as the bench retrieves them, a distinct set per
// question. Reported: the median time to first token, prefill and prompt tokens of each, and
// the median over questions of each of ours' time to first token as a ratio to the baseline's
// on the same sources (ours-ttft-ratio, titles-ttft-ratio). The machine's noise is large
// (single ratios spread 0.9–1.5 on two shared cores), so run many questions:
//
//	go test ./internal/chat -run '^$' -bench PromptLayout -benchtime 60x
func BenchmarkPromptLayout(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	oc := startBenchChatModel(ctx, b, 3, "layout") // a slot per layout below
	budget, err := NewBudget(guideTokens)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 11))
	vocab := gguf.Words()
	question := func(n int) (string, []Source) {
		w := func() string { return vocab[r.IntN(len(vocab))] }
		q := fmt.Sprintf("What does report %d say about the %s %s and the %s %s near the %s?", n, w(), w(), w(), w(), w())
		return q, layoutSources(r, vocab)
	}
	type layout struct {
		name     string
		messages func(q string, s []Source) []llm.Message
		ttft     []time.Duration
		prefill  []time.Duration
		tokens   []int
	}
	layouts := []*layout{
		{name: "baseline", messages: baselineMessages},
		{name: "ours", messages: func(q string, s []Source) []llm.Message {
			msgs, _, _ := BuildPrompt(Layout{System: DefaultSystemPrompt}, nil, q, s, budget)
			return msgs
		}},
		{name: "titles", messages: func(q string, s []Source) []llm.Message {
			msgs, _, _ := BuildPrompt(Layout{System: DefaultSystemPrompt, DocumentTitles: true}, nil, q, s, budget)
			return msgs
		}},
	}
	// A slot per layout, so each keeps its own static prefix cached (Ollama picks the slot with
	// the longest common prefix) while they take turns question by question on the same
	// sources: a question's ratio is then free of the machine's drift between questions.
	ratios := make([][]float64, len(layouts))
	n := 0
	for b.Loop() {
		n++
		q, s := question(n)
		ttft := make([]time.Duration, len(layouts))
		for i := range layouts {
			j := (i + n) % len(layouts)
			l := layouts[j]
			var prefill time.Duration
			var tokens int
			ttft[j], prefill, tokens = firstToken(ctx, b, oc, l.messages(q, s))
			if n > len(layouts) { // the first questions fill the slots
				l.ttft, l.prefill, l.tokens = append(l.ttft, ttft[j]), append(l.prefill, prefill), append(l.tokens, tokens)
			}
		}
		if n > len(layouts) {
			for j := range layouts {
				ratios[j] = append(ratios[j], float64(ttft[j])/float64(ttft[0]))
			}
		}
	}
	if len(ratios[0]) == 0 {
		b.Fatalf("run at least %d questions (-benchtime %dx)", len(layouts)+1, len(layouts)+10)
	}
	for j, l := range layouts {
		b.ReportMetric(float64(median(l.ttft).Milliseconds()), l.name+"-ttft-ms")
		b.ReportMetric(float64(median(l.prefill).Milliseconds()), l.name+"-prefill-ms")
		b.ReportMetric(float64(median(l.tokens)), l.name+"-tokens")
		if j > 0 {
			b.ReportMetric(median(ratios[j]), l.name+"-ttft-ratio")
		}
	}
}

// layoutSources draws eight sources as the bench retrieves them: chunks of about 150 words in
// sentences of 6–20, from documents named like the bench's, at most three per document.
func layoutSources(r *rand.Rand, vocab []string) []Source {
	var out []Source
	perDoc := map[int]int{}
	for len(out) < 8 {
		d := 1 + r.IntN(48)
		if perDoc[d] == 3 {
			continue
		}
		perDoc[d]++
		var t strings.Builder
		for words := 0; words < 150; {
			n := 6 + r.IntN(15)
			for i := range n {
				if i > 0 {
					t.WriteByte(' ')
				}
				t.WriteString(vocab[r.IntN(len(vocab))])
			}
			t.WriteString(". ")
			words += n
		}
		out = append(out, Source{DocumentID: fmt.Sprintf("doc-%d", d), Name: fmt.Sprintf("report-%04d.txt", d),
			ChunkIndex: r.IntN(40), Text: strings.TrimSpace(t.String()), Score: 0.5})
	}
	return out
}

// firstToken sends one streamed chat and returns the time to its first content token, Ollama's
// prefill time and the prompt's token count.
func firstToken(ctx context.Context, b *testing.B, oc *api.Client, msgs []llm.Message) (time.Duration, time.Duration, int) {
	am := make([]api.Message, len(msgs))
	for i, m := range msgs {
		am[i] = api.Message{Role: m.Role, Content: m.Content}
	}
	var ttft, prefill time.Duration
	var tokens int
	start := time.Now()
	err := oc.Chat(ctx, &api.ChatRequest{Model: "layout", Messages: am, Think: &api.ThinkValue{Value: false},
		Options: map[string]any{"num_predict": 8}}, func(x api.ChatResponse) error {
		if ttft == 0 && x.Message.Content != "" {
			ttft = time.Since(start)
		}
		if x.Done {
			prefill, tokens = x.PromptEvalDuration, x.PromptEvalCount
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return ttft, prefill, tokens
}

// median is the middle element of a sorted copy of d (the upper one of an even count).
func median[T cmp.Ordered](d []T) T {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

package chat

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/llm/llmtest"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/vector"
)

// fakeLLM is an llm.Client whose embeddings are hashed bags of words (cosine similarity is
// word overlap, so tests control scores) and whose chat answer is scripted and streamed word by
// word, honouring cancellation like the real client.
type fakeLLM struct {
	reply      func(llm.ChatRequest) string
	tokenDelay time.Duration
	// embedDelay and firstDelay hold the question's embedding and the first token back.
	embedDelay, firstDelay time.Duration

	mu         sync.Mutex
	embedCalls int
	chatCalls  int
	chats      []llm.ChatRequest
	lanes      []llm.Lane
}

const fakeDim = 64

var _ llm.Client = (*fakeLLM)(nil)

func (f *fakeLLM) Embed(ctx context.Context, lane llm.Lane, model string, texts []string) ([][]float32, error) {
	f.mu.Lock()
	f.embedCalls++
	f.lanes = append(f.lanes, lane)
	f.mu.Unlock()
	if f.embedDelay > 0 {
		time.Sleep(f.embedDelay)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = bagOfWords(t)
	}
	return out, nil
}

func bagOfWords(s string) []float32 { return llmtest.BagOfWords(s, fakeDim) }

func (f *fakeLLM) Chat(ctx context.Context, lane llm.Lane, req llm.ChatRequest) (llm.ChatResponse, error) {
	f.mu.Lock()
	f.chatCalls++
	f.chats = append(f.chats, req)
	f.lanes = append(f.lanes, lane)
	f.mu.Unlock()
	text := "An answer."
	if f.reply != nil {
		text = f.reply(req)
	}
	if f.firstDelay > 0 {
		time.Sleep(f.firstDelay)
	}
	var sb strings.Builder
	for i, w := range strings.SplitAfter(text, " ") {
		if i > 0 && f.tokenDelay > 0 {
			select {
			case <-time.After(f.tokenDelay):
			case <-ctx.Done():
				return llm.ChatResponse{Content: sb.String()}, ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return llm.ChatResponse{Content: sb.String()}, err
		}
		sb.WriteString(w)
		if req.OnToken != nil {
			if err := req.OnToken(w); err != nil {
				return llm.ChatResponse{Content: sb.String()}, err
			}
		}
	}
	return llm.ChatResponse{Content: sb.String(), DoneReason: "stop", PromptTokens: 100, GeneratedTokens: len(strings.Fields(text)),
		LoadDuration: time.Millisecond, PromptEvalDuration: 40 * time.Millisecond}, nil
}

func (f *fakeLLM) Ping(context.Context) error { return nil }

func (f *fakeLLM) counts() (embeds, chats int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.embedCalls, f.chatCalls
}

// doc is a test document: its chunks are stored with bag-of-words vectors.
type doc struct {
	id, name string
	tags     []string
	chunks   []string
}

var testDocs = []doc{
	{id: "hr1", name: "Employee handbook.pdf", tags: []string{"hr"}, chunks: []string{
		"Employees receive twenty five vacation days per year. Unused vacation days expire in March.",
		"Sick leave requires a doctor's note after three days of absence.",
		"Vacation requests go through the HR portal at least two weeks ahead.",
		"Parental leave is sixteen weeks for every parent.",
	}},
	{id: "eng1", name: "Engineering guide.md", tags: []string{"eng"}, chunks: []string{
		"Vacation days for on-call engineers are planned with the rota owner.",
		"Deployments happen on weekdays before noon through the release pipeline.",
	}},
	{id: "all1", name: "Company FAQ", tags: []string{"hr", "eng"}, chunks: []string{
		"The office opens at eight in the morning and closes at six.",
	}},
}

// guideTokens is the guide's budget with the response this server uses.
var guideTokens = serverconfig.Tokens{Context: 6000, History: 1500, System: 500, Response: 192, NumCtx: 8192}

var testSearch = serverconfig.Search{TopK: 8, ScoreThreshold: 0.3, MaxChunksPerDocument: 3, HNSWEf: 128}

// newMemoryStore returns an embedded store holding docs, embedded by the fake.
func newMemoryStore(t *testing.T, docs []doc) vector.Store {
	t.Helper()
	st, err := vector.NewMemory(t.TempDir(), serverconfig.Collection{Name: "test", VectorSize: fakeDim, Distance: "Cosine"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var cs []vector.Chunk
	for _, d := range docs {
		for i, text := range d.chunks {
			cs = append(cs, vector.Chunk{DocumentID: d.id, Name: d.name, ChunkIndex: i, Text: text, Tags: d.tags, Page: i + 1, Vector: bagOfWords(text)})
		}
	}
	if err := st.Upsert(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	return st
}

func newTestAnswerer(t *testing.T, f *fakeLLM, st vector.Store, mod func(*Config)) *Answerer {
	t.Helper()
	cfg := Config{ChatModel: "qwen3-rag", EmbeddingModel: "nomic-embed-text", Tokens: guideTokens,
		Search: testSearch, RagTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(f, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

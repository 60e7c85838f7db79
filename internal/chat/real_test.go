package chat

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/vector"
)

// ragVariant is the chat variant production derives from qwen3:8b with an explicit window.
const ragVariant = "qwen3-rag"

// The answering path against a real Ollama (tiny generated models under the production names;
// skipped without the binary unless RAG_REQUIRE_OLLAMA=1, and under -short) and the embedded
// vector store, documents embedded through nomic-embed-text. Replies are gibberish: the checks
// are on structure — streaming, sources mapping to stored chunks, counts, tags, cancellation.
func TestRealOllamaAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("real Ollama: skipped with -short")
	}
	srv := ollamatest.Start(t, ollamatest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	oc := srv.Client()
	for _, m := range []string{ollamatest.ChatModel, ollamatest.EmbedModel} {
		if err := ollamatest.CreateBaseModel(ctx, oc, m); err != nil {
			t.Fatal(err)
		}
	}
	// As production does: a variant of the pulled model with num_ctx set explicitly (Ollama's
	// default window depends on the machine's memory).
	stream := false
	if err := oc.Create(ctx, &api.CreateRequest{Model: ragVariant, From: ollamatest.ChatModel, Stream: &stream,
		Parameters: map[string]any{"num_ctx": guideTokens.NumCtx}}, func(api.ProgressResponse) error { return nil }); err != nil {
		t.Fatal(err)
	}

	client := llm.New(llm.Options{BaseURL: srv.URL, EmbedDimension: ollamatest.EmbedDim, KeepAlive: -1})
	store, stored := realStore(ctx, t, client)
	a, err := New(client, store, Config{
		ChatModel: ragVariant, EmbeddingModel: ollamatest.EmbedModel, Tokens: guideTokens,
		Search:      serverconfig.Search{TopK: 8, ScoreThreshold: 0.3, MaxChunksPerDocument: 3, HNSWEf: 128},
		RagTimeout:  time.Minute,
		ChatOptions: map[string]any{"temperature": 0, "seed": 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The question is a stored chunk's text, so at least that chunk scores 1 whatever the tiny
	// model's embedding geometry is.
	question := testDocs[0].chunks[0]

	t.Run("streams then returns sources that map to stored chunks", func(t *testing.T) {
		var toks []string
		start := time.Now()
		var first time.Duration
		r, err := a.Answer(ctx, Request{Question: question, Stream: func(s string) error {
			if len(toks) == 0 {
				first = time.Since(start)
			}
			toks = append(toks, s)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) == 0 || strings.Join(toks, "") != r.Answer || r.NoContext {
			t.Fatalf("%d tokens, answer %q, no context %v", len(toks), r.Answer, r.NoContext)
		}
		if len(r.Context) == 0 || r.Context[0].DocumentID != "hr1" || r.Context[0].ChunkIndex != 0 {
			t.Fatalf("context %+v: want hr1:0 first", r.Context)
		}
		perDoc := map[string]int{}
		for _, c := range append(append([]Citation{}, r.Context...), r.Sources...) {
			text, ok := stored[Ref{c.DocumentID, c.ChunkIndex}.ID()]
			if !ok {
				t.Fatalf("%s:%d is not a stored chunk", c.DocumentID, c.ChunkIndex)
			}
			if c.Snippet != snippet(text, snippetRunes) || c.Name == "" || c.Score < 0.3 {
				t.Errorf("citation %+v does not match the stored chunk", c)
			}
		}
		for _, c := range r.Context {
			perDoc[c.DocumentID]++
		}
		for d, n := range perDoc {
			if n > 3 {
				t.Errorf("%d chunks of %s, cap 3", n, d)
			}
		}
		u := r.Usage
		if u.PromptTokens < 1 || u.CompletionTokens < 1 || u.CompletionTokens > guideTokens.Response ||
			(u.DoneReason != "stop" && u.DoneReason != "length") {
			t.Errorf("usage %+v", u)
		}
		if u.Budget.Prompt > guideTokens.NumCtx-guideTokens.Response || u.Budget.Sources != len(r.Context) {
			t.Errorf("budget %+v", u.Budget)
		}
		t.Logf("first token %v, %d tokens, %d sources in context, %d cited, Ollama prompt %d tokens (budget count %d)",
			first, len(toks), len(r.Context), len(r.Sources), u.PromptTokens, u.Budget.Prompt)
	})

	t.Run("the variant runs with its own window", func(t *testing.T) {
		ps, err := oc.ListRunning(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range ps.Models {
			if strings.HasPrefix(m.Name, ragVariant) {
				found = true
				if m.ContextLength != guideTokens.NumCtx {
					t.Errorf("%s runs with context %d, want %d", m.Name, m.ContextLength, guideTokens.NumCtx)
				}
			}
		}
		if !found {
			t.Errorf("%s is not loaded: %+v", ragVariant, ps.Models)
		}
	})

	t.Run("tag filter", func(t *testing.T) {
		r, err := a.Answer(ctx, Request{Question: question, Tags: []string{"eng"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range append(append([]Citation{}, r.Context...), r.Sources...) {
			if c.DocumentID == "hr1" {
				t.Errorf("eng caller was given %s:%d", c.DocumentID, c.ChunkIndex)
			}
		}
	})

	t.Run("cancel mid-stream", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		var at time.Time
		_, err := a.Answer(cctx, Request{Question: question, Stream: func(string) error {
			if at.IsZero() {
				at = time.Now()
				ccancel()
			}
			return nil
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		took := time.Since(at)
		if took > 2*time.Second {
			t.Errorf("returned %v after the cancel", took)
		}
		// Ollama took the abort: the next answer is served.
		aborts := func() int {
			b, _ := os.ReadFile(srv.LogPath)
			return strings.Count(string(b), "aborting completion request due to client closing the connection")
		}
		abortsBefore := aborts()
		t0 := time.Now()
		nctx, ncancel := context.WithTimeout(ctx, 45*time.Second)
		defer ncancel()
		if _, err := a.Answer(nctx, Request{Question: question}); err != nil {
			// Ollama logs that line when a request it kept waiting for a slot is given up: the
			// cancelled answer's slot was never freed, the upstream bug ollama/ollama#17131 (see
			// the same check in internal/httpapi). Our side returned at once, checked above.
			deadline := time.Now().Add(2 * time.Second)
			for aborts() == abortsBefore && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if aborts() > abortsBefore {
				t.Skipf("Ollama %s leaked its only chat slot on the cancel (upstream bug ollama/ollama#17131); "+
					"Answer returned %v after the cancel", ollamatest.Version, took)
			}
			t.Fatal(err)
		}
		t.Logf("returned %v after the cancel; the next answer took %v", took, time.Since(t0))
	})
}

// realStore embeds testDocs through the embedding model into an embedded store and returns it
// with each chunk's text by id.
func realStore(ctx context.Context, t *testing.T, client llm.Client) (vector.Store, map[string]string) {
	t.Helper()
	st, err := vector.NewMemory(t.TempDir(), serverconfig.Collection{Name: "docs", VectorSize: ollamatest.EmbedDim, Distance: "Cosine"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	stored := map[string]string{}
	var cs []vector.Chunk
	var texts []string
	for _, d := range testDocs {
		for i, text := range d.chunks {
			cs = append(cs, vector.Chunk{DocumentID: d.id, Name: d.name, ChunkIndex: i, Text: text, Tags: d.tags})
			texts = append(texts, text)
			stored[Ref{d.id, i}.ID()] = text
		}
	}
	vecs, err := client.Embed(ctx, llm.Background, ollamatest.EmbedModel, texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		cs[i].Vector = vecs[i]
	}
	if err := st.Upsert(ctx, cs); err != nil {
		t.Fatal(err)
	}
	return st, stored
}

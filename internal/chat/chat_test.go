package chat

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ragstack/rag-operator/internal/chunk"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/serverconfig"
)

const vacationQ = "How many vacation days per year do employees receive?"

func TestAnswerStreamsAndCitesRetrievedChunksOnly(t *testing.T) {
	f := &fakeLLM{reply: func(llm.ChatRequest) string {
		// One real citation, one of a chunk the caller's tags hide, one that does not exist.
		return "Twenty five days [hr1:0]. On-call differs [eng1:0]. See also [hr1:99]."
	}}
	a := newTestAnswerer(t, f, newMemoryStore(t, testDocs), nil)
	var streamed []string
	r, err := a.Answer(context.Background(), Request{Question: vacationQ, Tags: []string{"hr"},
		Stream: func(s string) error { streamed = append(streamed, s); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if len(streamed) < 2 || strings.Join(streamed, "") != r.Answer {
		t.Fatalf("streamed %q, answer %q", streamed, r.Answer)
	}
	if len(r.Sources) != 1 || r.Sources[0].DocumentID != "hr1" || r.Sources[0].ChunkIndex != 0 {
		t.Fatalf("sources %+v, want only hr1:0", r.Sources)
	}
	c := r.Sources[0]
	if c.Name != "Employee handbook.pdf" || c.Page != 1 || !strings.HasPrefix(c.Snippet, "Employees receive") || c.Score < 0.3 {
		t.Errorf("citation not resolved to the stored chunk: %+v", c)
	}
	for _, c := range r.Context {
		if c.DocumentID == "eng1" {
			t.Errorf("context holds %s:%d, hidden by the tag filter", c.DocumentID, c.ChunkIndex)
		}
	}
	if r.NoContext || r.Cached || r.Usage.DoneReason != "stop" || r.Usage.Budget.Sources != len(r.Context) {
		t.Errorf("response %+v", r)
	}

	// The call: interactive lane, budgeted num_predict, thinking off, the variant's name.
	req := f.chats[0]
	if req.Model != "qwen3-rag" || req.MaxTokens != 192 || req.Think == nil || *req.Think {
		t.Errorf("chat request model %q max %d think %v", req.Model, req.MaxTokens, req.Think)
	}
	for _, l := range f.lanes {
		if l != llm.Interactive {
			t.Errorf("a call ran on the %s lane", l)
		}
	}
	user := req.Messages[len(req.Messages)-1].Content
	// Each source under its number, no title by default, no page (the citations carry both),
	// no ids.
	if !strings.HasPrefix(user, "[1] Employees") || strings.Contains(user, "handbook") || strings.Contains(user, "(page") || strings.Contains(user, "hr1") || strings.Contains(user, "eng1") || !strings.HasSuffix(user, "Question: "+vacationQ) {
		t.Errorf("user message:\n%s", user)
	}

	// search.documentTitles: the document's title once (no extension) above its sources.
	f = &fakeLLM{reply: func(llm.ChatRequest) string { return "Twenty five days [1]." }}
	a = newTestAnswerer(t, f, newMemoryStore(t, testDocs), func(c *Config) { c.Search.DocumentTitles = true })
	if _, err := a.Answer(context.Background(), Request{Question: vacationQ, Tags: []string{"hr"}}); err != nil {
		t.Fatal(err)
	}
	user = f.chats[0].Messages[len(f.chats[0].Messages)-1].Content
	if !strings.HasPrefix(user, "Employee handbook\n[1] Employees") || strings.Contains(user, ".pdf") {
		t.Errorf("user message with documentTitles:\n%s", user)
	}
}

func TestRetrieveCapsPerDocumentByRank(t *testing.T) {
	docs := []doc{
		{id: "big", name: "big", tags: []string{"t"}, chunks: []string{
			"alpha beta gamma delta", "alpha beta gamma", "alpha beta", "alpha beta gamma delta epsilon", "alpha",
		}},
		{id: "small", name: "small", tags: []string{"t"}, chunks: []string{"alpha beta gamma zeta", "unrelated words only"}},
	}
	a := newTestAnswerer(t, &fakeLLM{}, newMemoryStore(t, docs), func(c *Config) {
		c.Search = serverconfig.Search{TopK: 4, ScoreThreshold: 0.3, MaxChunksPerDocument: 2, HNSWEf: 64}
	})
	src, err := a.Retrieve(context.Background(), "alpha beta gamma delta", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, s := range src {
		ids = append(ids, s.ID())
		if i > 0 && s.Score > src[i-1].Score {
			t.Errorf("not in rank order: %v", ids)
		}
		if s.Score < 0.3 {
			t.Errorf("%s scores %v, under the threshold", s.ID(), s.Score)
		}
	}
	// big's best two (0 exact, 3 or 1 next), then small:0; big's third best is capped away and
	// small:1 is under the threshold.
	if len(src) != 3 || src[0].ID() != "big:0" || src[1].DocumentID != "big" || src[2].ID() != "small:0" {
		t.Fatalf("sources %v", ids)
	}
}

func TestTagFilterHidesDocumentsInSourcesCitationsAndCache(t *testing.T) {
	f := &fakeLLM{reply: func(req llm.ChatRequest) string {
		// Cite everything the prompt shows, plus eng1:0 whatever it shows.
		var ids []string
		for _, r := range ParseCitations(req.Messages[len(req.Messages)-1].Content) {
			ids = append(ids, "["+r.ID()+"]")
		}
		return "Answer " + strings.Join(ids, "") + " [eng1:0]"
	}}
	cache := NewCache(16)
	a := newTestAnswerer(t, f, newMemoryStore(t, testDocs), func(c *Config) { c.Cache = cache })
	ask := func(tags []string) Response {
		t.Helper()
		r, err := a.Answer(context.Background(), Request{Question: "Vacation days?", Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	docsOf := func(cs []Citation) map[string]bool {
		m := map[string]bool{}
		for _, c := range cs {
			m[c.DocumentID] = true
		}
		return m
	}

	eng := ask([]string{"eng"})
	if !docsOf(eng.Sources)["eng1"] || docsOf(eng.Context)["hr1"] || docsOf(eng.Sources)["hr1"] {
		t.Fatalf("eng caller: sources %+v context %+v", eng.Sources, eng.Context)
	}
	_, chats := f.counts()

	// Same question, other tags: a miss, and nothing of eng1 anywhere.
	hr := ask([]string{"hr"})
	if hr.Cached {
		t.Fatal("an hr caller was served the eng caller's cached answer")
	}
	if _, c := f.counts(); c != chats+1 {
		t.Errorf("model calls %d, want %d", c, chats+1)
	}
	if docsOf(hr.Sources)["eng1"] || docsOf(hr.Context)["eng1"] || !docsOf(hr.Context)["hr1"] {
		t.Fatalf("hr caller: sources %+v context %+v", hr.Sources, hr.Context)
	}

	// The same tags (in another order, with a duplicate) and a differently spelled question hit.
	r, err := a.Answer(context.Background(), Request{Question: "  VACATION   days? ", Tags: []string{"hr", "hr"}})
	if err != nil || !r.Cached || r.Answer != hr.Answer || docsOf(r.Context)["eng1"] {
		t.Fatalf("want a cache hit equal to the hr answer: %+v, %v", r, err)
	}
	both := ask([]string{"hr", "eng"})
	if both.Cached {
		t.Error("a caller with more tags hit a narrower caller's entry")
	}
	if got := ask([]string{"eng", "hr"}); !got.Cached {
		t.Error("tag order changed the key")
	}
	if got := ask(nil); got.Cached {
		t.Error("an unrestricted caller hit a restricted caller's entry")
	}

	// A knowledge-base change invalidates everything.
	cache.Bump()
	if got := ask([]string{"hr"}); got.Cached {
		t.Error("served a cached answer after Bump")
	}
}

func TestNoContextDoesNotCallTheModel(t *testing.T) {
	f := &fakeLLM{}
	a := newTestAnswerer(t, f, newMemoryStore(t, testDocs), nil)
	var streamed string
	r, err := a.Answer(context.Background(), Request{Question: "Quantum chromodynamics lattice gauge?",
		Stream: func(s string) error { streamed += s; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !r.NoContext || r.Answer != NoContextAnswer || streamed != NoContextAnswer || len(r.Sources) != 0 || r.Sources == nil {
		t.Fatalf("response %+v, streamed %q", r, streamed)
	}
	if e, c := f.counts(); e != 1 || c != 0 {
		t.Errorf("%d embed and %d chat calls, want 1 and 0", e, c)
	}

	// A caller restricted to no tag sees nothing, without even embedding.
	r, err = a.Answer(context.Background(), Request{Question: vacationQ, Tags: []string{}})
	if err != nil || !r.NoContext {
		t.Fatalf("empty tag list: %+v, %v", r, err)
	}
	// Tags that match no document: the same.
	r, err = a.Answer(context.Background(), Request{Question: vacationQ, Tags: []string{"finance"}})
	if err != nil || !r.NoContext {
		t.Fatalf("unknown tag: %+v, %v", r, err)
	}
	if e, c := f.counts(); e != 2 || c != 0 {
		t.Errorf("%d embed and %d chat calls, want 2 and 0", e, c)
	}
}

func TestQuestionTooLong(t *testing.T) {
	f := &fakeLLM{}
	a := newTestAnswerer(t, f, newMemoryStore(t, testDocs), nil)
	q := strings.Repeat("why is this so long ", 5000) // 100 KB
	_, err := a.Answer(context.Background(), Request{Question: q})
	if !errors.Is(err, ErrQuestionTooLong) {
		t.Fatalf("got %v, want ErrQuestionTooLong", err)
	}
	if e, c := f.counts(); e != 0 || c != 0 {
		t.Errorf("%d embed and %d chat calls for a refused question", e, c)
	}
	if _, err := a.Answer(context.Background(), Request{Question: " \n\t"}); !errors.Is(err, ErrEmptyQuestion) {
		t.Errorf("blank question: %v", err)
	}
}

func TestCancelMidStreamReturnsQuickly(t *testing.T) {
	f := &fakeLLM{tokenDelay: 50 * time.Millisecond, reply: func(llm.ChatRequest) string { return strings.Repeat("word ", 1000) }}
	a := newTestAnswerer(t, f, newMemoryStore(t, testDocs), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tokens := 0
	start := time.Now()
	var cancelledAt time.Time
	r, err := a.Answer(ctx, Request{Question: vacationQ, Stream: func(string) error {
		tokens++
		if tokens == 3 {
			cancelledAt = time.Now()
			cancel() // the client went away
		}
		return nil
	}})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if took := time.Since(cancelledAt); took > time.Second {
		t.Errorf("returned %v after the cancel", took)
	}
	if tokens != 3 || r.Answer != "word word word " {
		t.Errorf("%d tokens, partial answer %q", tokens, r.Answer)
	}
	t.Logf("cancelled after %v, returned %v later", cancelledAt.Sub(start), time.Since(cancelledAt))
}

func TestRagTimeout(t *testing.T) {
	f := &fakeLLM{tokenDelay: 50 * time.Millisecond, reply: func(llm.ChatRequest) string { return strings.Repeat("word ", 1000) }}
	a := newTestAnswerer(t, f, newMemoryStore(t, testDocs), func(c *Config) { c.RagTimeout = 200 * time.Millisecond })
	start := time.Now()
	_, err := a.Answer(context.Background(), Request{Question: vacationQ})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrTimeout and DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v with a 200ms ragTimeout", took)
	}
}

func TestStreamErrorAborts(t *testing.T) {
	f := &fakeLLM{reply: func(llm.ChatRequest) string { return "one two three four" }}
	a := newTestAnswerer(t, f, newMemoryStore(t, testDocs), func(c *Config) { c.Cache = NewCache(4) })
	gone := errors.New("client gone")
	_, err := a.Answer(context.Background(), Request{Question: vacationQ, Stream: func(string) error { return gone }})
	if !errors.Is(err, gone) {
		t.Fatalf("got %v", err)
	}
	if a.cfg.Cache.Len() != 0 {
		t.Error("an aborted answer was cached")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	st := newMemoryStore(t, nil)
	base := Config{ChatModel: "qwen3-rag", EmbeddingModel: "nomic-embed-text", Tokens: guideTokens, Search: testSearch, RagTimeout: time.Second}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"budget over the window", func(c *Config) { c.Tokens.Response = 2048 }, "exceeds numCtx"},
		{"system prompt over its allowance", func(c *Config) { c.SystemPrompt = strings.Repeat("rule ", 400) }, "tokens.system allows 500"},
		{"no window", func(c *Config) { c.Tokens.NumCtx = 0 }, "numCtx"},
		{"no room for a question", func(c *Config) {
			// The system message and the whole context allowance leave exactly 0 tokens.
			sys := chunk.CountTokens(systemMessage(DefaultSystemPrompt))
			c.Tokens = serverconfig.Tokens{Context: 8192 - 592 - fixedOverhead - sys, History: 0, System: sys, Response: 592, NumCtx: 8192}
		}, "no room left for a question"},
		{"no model", func(c *Config) { c.ChatModel = "" }, "models must be named"},
		{"no timeout", func(c *Config) { c.RagTimeout = 0 }, "ragTimeout"},
		{"no topK", func(c *Config) { c.Search.TopK = 0 }, "search.topK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mod(&cfg)
			_, err := New(&fakeLLM{}, st, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(&fakeLLM{}, st, base); err != nil {
		t.Fatal(err)
	}
}

func TestFromServerConfig(t *testing.T) {
	c := FromServerConfig(serverconfig.Config{
		Models: serverconfig.Models{Chat: "qwen3-rag", Embedding: "nomic-embed-text"},
		Tokens: guideTokens, Search: testSearch, Limits: serverconfig.Limits{RagTimeout: "45s"},
	})
	if c.ChatModel != "qwen3-rag" || c.EmbeddingModel != "nomic-embed-text" || c.RagTimeout != 45*time.Second ||
		c.Tokens != guideTokens || c.Search != testSearch || c.Cache != nil {
		t.Errorf("%+v", c)
	}
}

// The answer says where its time went: a slow question embedding and a slow first token are
// each attributed to their step, and Ollama's own load and prefill figures are passed on.
func TestTimingsAttributeTheWait(t *testing.T) {
	f := &fakeLLM{embedDelay: 30 * time.Millisecond, firstDelay: 60 * time.Millisecond}
	a := newTestAnswerer(t, f, newMemoryStore(t, testDocs), nil)
	r, err := a.Answer(context.Background(), Request{Question: vacationQ, Stream: func(string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	tm := r.Timings
	if tm.Embed < 30 || tm.FirstToken < 60 || tm.Search <= 0 || tm.Prompt <= 0 {
		t.Errorf("timings %+v: want embed ≥ 30 ms, first token ≥ 60 ms, search and prompt measured", tm)
	}
	if tm.Total < tm.Embed+tm.Search+tm.Prompt+tm.FirstToken {
		t.Errorf("total %.1f ms is less than its steps: %+v", tm.Total, tm)
	}
	if tm.Load != 1 || tm.PromptEval != 40 {
		t.Errorf("Ollama's load and prefill not passed on: %+v", tm)
	}
}

package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ragstack/rag-operator/internal/llm"
)

// holdingLLM is the fake with llm.BackgroundHolder: it records, in order, when the hold starts
// and ends and what each call saw.
type holdingLLM struct {
	*fakeLLM
	embedErr error // returned by Embed when set
	mu       sync.Mutex
	held     int
	events   []string
}

func (h *holdingLLM) log(e string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

func (h *holdingLLM) HoldBackground() func() {
	h.mu.Lock()
	h.held++
	h.events = append(h.events, "hold")
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.held--
			h.events = append(h.events, "release")
			h.mu.Unlock()
		})
	}
}

func (h *holdingLLM) state() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("held=%d", h.held)
}

func (h *holdingLLM) Embed(ctx context.Context, lane llm.Lane, model string, texts []string) ([][]float32, error) {
	h.log("embed " + h.state())
	if h.embedErr != nil {
		return nil, h.embedErr
	}
	return h.fakeLLM.Embed(ctx, lane, model, texts)
}

func (h *holdingLLM) Chat(ctx context.Context, lane llm.Lane, req llm.ChatRequest) (llm.ChatResponse, error) {
	h.log("chat " + h.state())
	inner := req.OnToken
	if inner != nil {
		req.OnToken = func(tok string) error {
			err := inner(tok)
			h.log("token " + h.state())
			return err
		}
	}
	return h.fakeLLM.Chat(ctx, lane, req)
}

var _ llm.BackgroundHolder = (*holdingLLM)(nil)

// A question holds background work from its embedding to its first answer token, then lets it
// go while the rest of the answer streams.
func TestAnswerHoldsBackgroundUntilFirstToken(t *testing.T) {
	h := &holdingLLM{fakeLLM: &fakeLLM{reply: func(llm.ChatRequest) string { return "Twenty five days [hr1:0]. More." }}}
	a := newTestAnswerer(t, h.fakeLLM, newMemoryStore(t, testDocs), nil)
	a.llm = h
	var streamed []string
	_, err := a.Answer(context.Background(), Request{Question: "How many vacation days?", Stream: func(s string) error {
		streamed = append(streamed, s)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"hold", "embed held=1", "chat held=1", "release"}
	for range streamed {
		want = append(want, "token held=0")
	}
	if len(streamed) < 2 || !slices.Equal(h.events, want) {
		t.Errorf("events\n got %q\nwant %q", h.events, want)
	}
}

// Every way out of an answer ends the hold: no context, a failed stream, a non-streaming
// answer (held to the end, so its retries still work), a cache hit (never held).
func TestAnswerAlwaysEndsTheHold(t *testing.T) {
	for _, tc := range []struct {
		name     string
		question string
		stream   func(string) error
		wantErr  bool
		wantLog  []string
	}{
		{"no context", "zebra quantum", nil, false, []string{"hold", "embed held=1", "release"}},
		{"stream fails", "How many vacation days?", func(string) error { return errors.New("client gone") }, true,
			[]string{"hold", "embed held=1", "chat held=1", "release", "token held=0"}},
		{"not streamed", "How many vacation days?", nil, false, []string{"hold", "embed held=1", "chat held=1", "release"}},
		{"retrieval fails", "fail the embedding", nil, true, []string{"hold", "embed held=1", "release"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &holdingLLM{fakeLLM: &fakeLLM{}}
			if tc.name == "retrieval fails" {
				h.embedErr = errors.New("ollama down")
			}
			a := newTestAnswerer(t, h.fakeLLM, newMemoryStore(t, testDocs), nil)
			a.llm = h
			_, err := a.Answer(context.Background(), Request{Question: tc.question, Stream: tc.stream})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !slices.Equal(h.events, tc.wantLog) {
				t.Errorf("events\n got %q\nwant %q", h.events, tc.wantLog)
			}
		})
	}
}

// A cached answer costs Ollama nothing, so it never pauses background work.
func TestCachedAnswerDoesNotHold(t *testing.T) {
	h := &holdingLLM{fakeLLM: &fakeLLM{}}
	a := newTestAnswerer(t, h.fakeLLM, newMemoryStore(t, testDocs), func(c *Config) { c.Cache = NewCache(8) })
	a.llm = h
	if _, err := a.Answer(context.Background(), Request{Question: "How many vacation days?"}); err != nil {
		t.Fatal(err)
	}
	h.events = nil
	r, err := a.Answer(context.Background(), Request{Question: "How many vacation days?"})
	if err != nil || !r.Cached {
		t.Fatalf("second answer not from the cache: %+v, %v", r, err)
	}
	if len(h.events) != 0 {
		t.Errorf("a cache hit touched the client: %q", h.events)
	}
}

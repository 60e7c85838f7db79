package llm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// recorder is a pass-through proxy in front of Ollama that records, in order, when each chat
// request reached Ollama and when its answer ended: the lanes' effect as Ollama sees it.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) index(e string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range r.events {
		if x == e {
			return i
		}
	}
	return -1
}

func (r *recorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.events {
		if strings.HasPrefix(x, prefix) {
			n++
		}
	}
	return n
}

func (r *recorder) proxy(t *testing.T, upstream string) string {
	target, _ := url.Parse(upstream)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		name := ""
		if req.URL.Path == "/api/chat" {
			for _, tag := range []string{"BACKGROUND-", "INTERACTIVE-"} {
				if i := strings.Index(string(body), tag); i >= 0 {
					name = string(body[i : i+len(tag)+1])
				}
			}
			r.add("arrive " + name)
		}
		out, err := http.NewRequestWithContext(req.Context(), req.Method, target.String()+req.URL.RequestURI(), strings.NewReader(string(body)))
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		out.Header = req.Header.Clone()
		resp, err := http.DefaultClient.Do(out)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				break
			}
		}
		if name != "" {
			r.add("done " + name)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestLanesAgainstRealOllama proves, on a real Ollama with NUM_PARALLEL 1 and 4 and the
// production configuration (the server does not know NUM_PARALLEL; background capped at the
// warming limit), that with background work saturating every slot it may use, a chat request
// is admitted ahead of background calls queued before it and is answered before the next
// background call: it waits at most for one background request.
func TestLanesAgainstRealOllama(t *testing.T) {
	if testing.Short() {
		t.Skip("real Ollama skipped in -short mode")
	}
	for _, numParallel := range []int{1, 4} {
		t.Run(fmt.Sprintf("NUM_PARALLEL=%d", numParallel), func(t *testing.T) {
			srv := ollamatest.Start(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": fmt.Sprint(numParallel)}})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if err := ollamatest.CreateBaseModel(ctx, srv.Client(), ollamatest.ChatModel); err != nil {
				t.Fatal(err)
			}
			stream := false
			if err := srv.Client().Create(ctx, &api.CreateRequest{Model: "qwen3-rag", From: ollamatest.ChatModel,
				Parameters: map[string]any{"num_ctx": 8192}, Stream: &stream}, func(api.ProgressResponse) error { return nil }); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			// Production shape: warming limit below NUM_PARALLEL (the CRD's rule); with one slot
			// the bench's shared-slot setting of 1.
			background := max(1, numParallel-1)
			c := New(Options{BaseURL: rec.proxy(t, srv.URL), BackgroundMax: background, KeepAlive: -1})
			// Load the model first so every request below finds it loaded (no scheduling queue).
			if _, err := c.Chat(ctx, Interactive, ChatRequest{Model: "qwen3-rag", Messages: []Message{{Role: "user", Content: "INTERACTIVE-w"}}, MaxTokens: 4, Think: new(bool)}); err != nil {
				t.Fatal(err)
			}
			// A long prompt makes each background request take a while (prompt processing).
			long := strings.Repeat("the quick brown fox jumps over the lazy dog ", 250)
			queued := background
			var wg sync.WaitGroup
			for i := range background + queued {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = c.Chat(ctx, Background, ChatRequest{Model: "qwen3-rag", MaxTokens: 8, Think: new(bool),
						Messages: []Message{{Role: "user", Content: fmt.Sprintf("BACKGROUND-%c %s", 'a'+i, long)}}})
				}()
				if i < background {
					// Saturate in order so the rest is queued behind them in the lane.
					waitFor(t, func() bool { return rec.count("arrive BACKGROUND") == i+1 })
				}
			}
			time.Sleep(100 * time.Millisecond) // the queued ones are now waiting in the lane
			if n := rec.count("arrive BACKGROUND"); n != background {
				t.Fatalf("%d background requests reached Ollama, want exactly the cap %d", n, background)
			}
			if _, err := c.Chat(ctx, Interactive, ChatRequest{Model: "qwen3-rag", Messages: []Message{{Role: "user", Content: "INTERACTIVE-x"}}, MaxTokens: 4, Think: new(bool)}); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			chatArrive, chatDone := rec.index("arrive INTERACTIVE-x"), rec.index("done INTERACTIVE-x")
			firstQueued := rec.index(fmt.Sprintf("arrive BACKGROUND-%c", 'a'+background))
			if chatArrive < 0 || firstQueued < 0 || chatArrive > firstQueued {
				t.Fatalf("the chat reached Ollama after a background request queued before it: %v", rec.events)
			}
			// The chat waits for at most one running background request: it is answered before
			// any background request that was queued when it arrived completes.
			if firstQueuedDone := rec.index(fmt.Sprintf("done BACKGROUND-%c", 'a'+background)); chatDone > firstQueuedDone {
				t.Fatalf("the chat was answered after a background request queued before it: %v", rec.events)
			}
			if numParallel > 1 {
				// A slot was free: the chat did not wait for any background request.
				for i := range background {
					if d := rec.index(fmt.Sprintf("done BACKGROUND-%c", 'a'+i)); d < chatDone {
						t.Errorf("with a free slot the chat still waited for BACKGROUND-%c: %v", 'a'+i, rec.events)
					}
				}
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

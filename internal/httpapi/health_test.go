package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadinessSelfAndDependencies(t *testing.T) {
	var mu sync.Mutex
	errs := map[string]error{}
	probe := func(name string) func(context.Context) error {
		return func(context.Context) error { mu.Lock(); defer mu.Unlock(); return errs[name] }
	}
	r := NewReadiness(time.Hour, time.Second,
		Check{Name: DepStore, Probe: probe(DepStore), Self: true},
		Check{Name: DepOllama, Probe: probe(DepOllama)},
		Check{Name: DepVector, Probe: probe(DepVector)})
	if r.Ready() {
		t.Fatal("ready before the store was probed")
	}
	if name, down := r.Down(DepOllama, DepVector); down {
		t.Fatalf("%s down before any probe: a request should try for itself", name)
	}
	mu.Lock()
	errs[DepOllama] = errors.New("connection refused")
	errs[DepVector] = errors.New("unavailable")
	mu.Unlock()
	r.ProbeOnce(context.Background())
	if !r.Ready() {
		t.Fatal("a dependency made the server not ready")
	}
	if name, down := r.Down(DepVector, DepOllama); !down || name != DepVector {
		t.Fatalf("Down = %q %v, want the first named that is down", name, down)
	}
	if _, down := r.Down(DepStore); down {
		t.Fatal("store reported down")
	}
	mu.Lock()
	errs = map[string]error{DepStore: errors.New("disk I/O error")}
	mu.Unlock()
	r.ProbeOnce(context.Background())
	if r.Ready() {
		t.Fatal("ready with the store failing")
	}
	if _, down := r.Down(answerDeps...); down {
		t.Fatal("dependencies still down after a passing probe")
	}
}

// TestDependencyDownRefusesOnlyQuestions: with Ollama (then the vector store) down by the last
// probe, questions get 503 + Retry-After at once, without a model call, in each API's error
// shape; everything else — documents, uploads, deletes, sessions, /v1/models, /readyz — answers.
func TestDependencyDownRefusesOnlyQuestions(t *testing.T) {
	var mu sync.Mutex
	errs := map[string]error{}
	probe := func(name string) func(context.Context) error {
		return func(context.Context) error { mu.Lock(); defer mu.Unlock(); return errs[name] }
	}
	setDown := func(name string, err error) {
		mu.Lock()
		errs[name] = err
		mu.Unlock()
	}
	f := &chatLLM{}
	var h *chatHarness
	ready := NewReadiness(time.Hour, time.Second,
		Check{Name: DepStore, Self: true, Probe: func(ctx context.Context) error { return h.st.Ping(ctx) }},
		Check{Name: DepOllama, Probe: probe(DepOllama)},
		Check{Name: DepVector, Probe: probe(DepVector)})
	h = newChatHarness(t, f, chatOptions{ready: ready})
	ready.ProbeOnce(context.Background())
	hrID, engID := h.seed()
	chats := func() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.chats) }

	setDown(DepOllama, errors.New("dial tcp 127.0.0.1:11434: connection refused"))
	ready.ProbeOnce(context.Background())
	before := chats()

	refused := func(resp *http.Response, b []byte, want string) {
		t.Helper()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || !strings.Contains(string(b), want) ||
			strings.Contains(string(b), "11434") {
			t.Fatalf("%d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	start := time.Now()
	resp, b := h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ})
	refused(resp, b, "(Ollama) is unavailable")
	resp, msgs, _ := h.stream("/api/chat", hrTok, ChatRequest{Question: vacationQ, Stream: true})
	if resp.StatusCode != 503 || msgs != nil || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("streamed chat %d %+v", resp.StatusCode, msgs)
	}
	resp, b = h.post("/v1/chat/completions", hrTok, map[string]any{"model": "qwen3-rag", "messages": []map[string]string{{"role": "user", "content": vacationQ}}})
	refused(resp, b, `"code":"service_unavailable"`)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("refusals took %s: they should come from the cached probe", took)
	}
	if n := chats(); n != before {
		t.Fatalf("%d model calls while Ollama was down", n-before)
	}

	// The rest of the API works.
	if resp, b := h.do("GET", "/readyz", "", "", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz %d %s", resp.StatusCode, b)
	}
	if resp, b := h.do("GET", "/api/documents", adminTok, "", nil); resp.StatusCode != 200 || !strings.Contains(string(b), `"total":2`) {
		t.Fatalf("list %d %s", resp.StatusCode, b)
	}
	if resp, _ := h.do("GET", "/api/documents/"+hrID, adminTok, "", nil); resp.StatusCode != 200 {
		t.Fatalf("get %d", resp.StatusCode)
	}
	if code, ur := h.upload(adminTok, []file{{"new.txt", []byte(words(30, "n"))}}, "hr"); code != 202 || len(ur.IDs) != 1 {
		t.Fatalf("upload %d %+v", code, ur)
	}
	if resp, b := h.do("DELETE", "/api/documents/"+engID, adminTok, "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete %d %s", resp.StatusCode, b)
	}
	resp, b = h.post("/api/sessions", hrTok, map[string]string{"title": "outage"})
	if resp.StatusCode != 201 {
		t.Fatalf("create session %d %s", resp.StatusCode, b)
	}
	ss := decode[Session](t, b)
	for _, path := range []string{"/api/sessions", "/api/sessions/" + ss.ID, "/v1/models"} {
		if resp, b := h.do("GET", path, hrTok, "", nil); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	// A question in a session is refused too, and records no turn.
	resp, b = h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ, SessionID: ss.ID})
	refused(resp, b, "(Ollama) is unavailable")
	if _, b := h.do("GET", "/api/sessions/"+ss.ID, hrTok, "", nil); !strings.Contains(string(b), `"turn_count":0`) {
		t.Fatalf("session after a refused question: %s", b)
	}
	if resp, _ := h.do("DELETE", "/api/sessions/"+ss.ID, hrTok, "", nil); resp.StatusCode != 204 {
		t.Fatalf("delete session %d", resp.StatusCode)
	}
	_, m := h.do("GET", "/metrics", adminTok, "", nil)
	for _, want := range []string{`rag_chat_answers_total{api="chat",outcome="unavailable"} 3`, `rag_chat_answers_total{api="openai",outcome="unavailable"} 1`,
		`rag_dependency_up{dependency="ollama"} 0`, `rag_dependency_up{dependency="vector"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The vector store down instead: refused, naming it.
	setDown(DepOllama, nil)
	setDown(DepVector, errors.New("rpc error: code = Unavailable"))
	ready.ProbeOnce(context.Background())
	resp, b = h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ})
	refused(resp, b, "the vector store is unavailable")

	// Both back: answered.
	setDown(DepVector, nil)
	ready.ProbeOnce(context.Background())
	if resp, b := h.post("/api/chat", hrTok, ChatRequest{Question: vacationQ}); resp.StatusCode != 200 {
		t.Fatalf("chat after recovery %d %s", resp.StatusCode, b)
	}
	if n := chats(); n != before+1 {
		t.Fatalf("%d model calls after recovery, want 1", n-before)
	}
}

package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeOllama is an in-process Ollama that lets a test decide when each call answers: every
// /api/chat and /api/embed request is announced on a channel and then blocks until the test
// releases it (or the client goes away), so slot ordering can be asserted without sleeping.
type fakeOllama struct {
	t   *testing.T
	srv *httptest.Server

	chats  chan *held // one per /api/chat request, on arrival
	embeds chan *held // one per /api/embed request, when holdEmbeds is set

	mu         sync.Mutex
	holdEmbeds bool
	// embedFault, when set, decides an /api/embed call's fate by call number (0-based) and
	// inputs: status 0 means answer normally.
	embedFault func(call int, inputs []string) (status int, retryAfter string)
	embedDim   func(input string) int
	embedCalls [][]string       // inputs of every /api/embed call, in arrival order
	embedOK    map[string]int   // input -> times it was embedded successfully
	chatBodies []map[string]any // raw JSON of every /api/chat request
	// chatFault decides a chat call's fate by call number: status 0 streams normally;
	// midStreamError streams one token then an error line.
	chatFault      func(call int) (status int, midStreamError string)
	chatCallsCount int

	conns atomic.Int32 // TCP connections accepted
}

// held is one request parked in the fake server.
type held struct {
	Model   string
	Inputs  []string      // embed inputs
	release chan struct{} // close to let it answer
	gone    chan struct{} // closed when the client cancelled the request
}

func (h *held) Release() { close(h.release) }

func newFakeOllama(t *testing.T) *fakeOllama {
	f := &fakeOllama{
		t:       t,
		chats:   make(chan *held, 64),
		embeds:  make(chan *held, 64),
		embedOK: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"version":"0.24.0"}`))
	})
	mux.HandleFunc("POST /api/chat", f.chat)
	mux.HandleFunc("POST /api/embed", f.embed)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOllama) URL() string { return f.srv.URL }

// Accessors lock: the handlers run on the server's goroutines.
func (f *fakeOllama) calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.embedCalls)
}

func (f *fakeOllama) embedded(in string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.embedOK[in]
}

func (f *fakeOllama) bodies() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.chatBodies)
}

func (f *fakeOllama) chat(w http.ResponseWriter, r *http.Request) {
	var raw map[string]any
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.chatBodies = append(f.chatBodies, raw)
	call := f.chatCallsCount
	f.chatCallsCount++
	fault := f.chatFault
	f.mu.Unlock()
	if fault != nil {
		if status, _ := fault(call); status != 0 {
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, `{"error":"fault %d"}`, status)
			return
		}
	}
	h := &held{Model: raw["model"].(string), release: make(chan struct{}), gone: make(chan struct{})}
	f.chats <- h
	select {
	case <-h.release:
	case <-r.Context().Done():
		close(h.gone)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flush := func() { w.(http.Flusher).Flush() }
	if fault != nil {
		if _, msg := fault(call); msg != "" {
			_ = enc.Encode(api.ChatResponse{Model: h.Model, Message: api.Message{Role: "assistant", Content: "partial"}})
			flush()
			_ = enc.Encode(map[string]string{"error": msg})
			return
		}
	}
	for _, tok := range []string{"Hello", ", ", "world"} {
		_ = enc.Encode(api.ChatResponse{Model: h.Model, Message: api.Message{Role: "assistant", Content: tok}})
		flush()
	}
	_ = enc.Encode(api.ChatResponse{Model: h.Model, Message: api.Message{Role: "assistant"}, Done: true, DoneReason: "stop",
		Metrics: api.Metrics{PromptEvalCount: 7, EvalCount: 3}})
}

func (f *fakeOllama) embed(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string   `json:"model"`
		Input     []string `json:"input"`
		Truncate  *bool    `json:"truncate"`
		KeepAlive any      `json:"keep_alive"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	if req.Truncate == nil || !*req.Truncate {
		f.t.Errorf("embed request without truncate: true")
	}
	f.mu.Lock()
	call := len(f.embedCalls)
	f.embedCalls = append(f.embedCalls, req.Input)
	hold, fault, dimFn := f.holdEmbeds, f.embedFault, f.embedDim
	f.mu.Unlock()

	if hold {
		h := &held{Model: req.Model, Inputs: req.Input, release: make(chan struct{}), gone: make(chan struct{})}
		f.embeds <- h
		select {
		case <-h.release:
		case <-r.Context().Done():
			close(h.gone)
			return
		}
	}
	if fault != nil {
		if status, ra := fault(call, req.Input); status != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			if status == -1 { // hang until the client gives up (per-call timeout)
				<-r.Context().Done()
				return
			}
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, `{"error":"fault %d"}`, status)
			return
		}
	}
	vecs := make([][]float32, len(req.Input))
	f.mu.Lock()
	for i, in := range req.Input {
		dim := 4
		if dimFn != nil {
			dim = dimFn(in)
		}
		vecs[i] = fakeVector(in, dim)
		f.embedOK[in]++
	}
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(api.EmbedResponse{Model: req.Model, Embeddings: vecs})
}

// fakeVector encodes the input's number (texts are "t<N>") in the first component, so a test
// can check results come back in input order.
func fakeVector(in string, dim int) []float32 {
	n, _ := strconv.Atoi(strings.TrimPrefix(in, "t"))
	v := make([]float32, dim)
	v[0] = float32(n)
	for i := 1; i < dim; i++ {
		v[i] = 1
	}
	return v
}

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "t" + strconv.Itoa(i)
	}
	return out
}

// next receives the next parked request or fails the test.
func next(t *testing.T, ch <-chan *held) *held {
	t.Helper()
	select {
	case h := <-ch:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the fake Ollama")
		return nil
	}
}

// none asserts no request is parked right now. Only meaningful after waitGate has shown the
// client's state is settled (a request admitted by the gate is already on its way).
func none(t *testing.T, ch <-chan *held) {
	t.Helper()
	select {
	case h := <-ch:
		t.Fatalf("unexpected request for %q reached the fake Ollama", h.Model)
	default:
	}
}

func waitGate(t *testing.T, g *gate, cond func(gateState) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.waitFor(ctx, cond); err != nil {
		t.Fatal(err)
	}
}

type chatResult struct {
	resp ChatResponse
	err  error
}

// goChat starts a chat call and returns where its result will arrive.
func goChat(ctx context.Context, c *Ollama, lane Lane, model string) <-chan chatResult {
	ch := make(chan chatResult, 1)
	go func() {
		resp, err := c.Chat(ctx, lane, ChatRequest{Model: model, Messages: []Message{{Role: "user", Content: "hi"}}})
		ch <- chatResult{resp, err}
	}()
	return ch
}

func result[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return")
		var zero T
		return zero
	}
}

// value reads a single-series collector (prometheus/testutil would do this, but it pulls a
// module go.mod does not list).
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	close(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("metric %v is neither gauge nor counter", &m)
	return 0
}

// seriesCount counts the series of the named metric families in reg.
func seriesCount(reg prometheus.Gatherer, names ...string) (int, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mf := range mfs {
		if slices.Contains(names, mf.GetName()) {
			n += len(mf.GetMetric())
		}
	}
	return n, nil
}

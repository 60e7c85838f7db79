package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/prometheus/client_golang/prometheus"
)

// poolServer is a fake Ollama that can be stopped (its port then refuses connections, as a
// dead pod's address does) and started again on the same address, and that records what each
// request was, in order.
type poolServer struct {
	t    *testing.T
	addr string

	mu      sync.Mutex
	ln      net.Listener
	srv     *http.Server
	log     []string            // "embed:<n inputs>", "load:<model>", "chat:<model>" in arrival order
	status  int                 // when set, embed and chat answer it
	midFail bool                // chat streams one token, then an error line
	missing map[string]bool     // models answered 404
	hold    map[string]chan any // op → requests wait on it until closed ("embed", "chat")
	arrived chan string         // every embed/chat request, on arrival
}

func newPoolServer(t *testing.T) *poolServer {
	s := &poolServer{t: t, missing: map[string]bool{}, hold: map[string]chan any{}, arrived: make(chan string, 256)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *poolServer) URL() string { return "http://" + s.addr }

func (s *poolServer) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"version":"0.24.0"}`)) })
	mux.HandleFunc("POST /api/embed", s.embed)
	mux.HandleFunc("POST /api/generate", s.generate)
	mux.HandleFunc("POST /api/chat", s.chat)
	mux.HandleFunc("GET /api/ps", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"models":[{"name":"chat","size":%d}]}`, len(s.addr))
	})
	srv := &http.Server{Handler: mux}
	s.mu.Lock()
	s.ln, s.srv = ln, srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop closes the listener and every connection: new calls are refused, calls in flight cut.
func (s *poolServer) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// start serves again on the same address.
func (s *poolServer) start() {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

func (s *poolServer) set(f func(s *poolServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *poolServer) requests(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (s *poolServer) record(entry, op, model string, w http.ResponseWriter, r *http.Request) (ok bool) {
	s.mu.Lock()
	s.log = append(s.log, entry)
	missing, status, hold := s.missing[model], s.status, s.hold[op]
	s.mu.Unlock()
	if missing {
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprintf(w, `{"error":"model '%s' not found"}`, model)
		return false
	}
	if op != "load" {
		s.arrived <- entry
	}
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return false
		}
	}
	if status != 0 && op != "load" {
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"error":"fault %d"}`, status)
		return false
	}
	return true
}

func (s *poolServer) embed(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	if len(req.Input) == 0 {
		if s.record("load:"+req.Model, "load", req.Model, w, r) {
			_ = json.NewEncoder(w).Encode(api.EmbedResponse{Model: req.Model, Embeddings: [][]float32{}})
		}
		return
	}
	if !s.record(fmt.Sprintf("embed:%d", len(req.Input)), "embed", req.Model, w, r) {
		return
	}
	vecs := make([][]float32, len(req.Input))
	for i, in := range req.Input {
		vecs[i] = fakeVector(in, 4)
	}
	_ = json.NewEncoder(w).Encode(api.EmbedResponse{Model: req.Model, Embeddings: vecs})
}

func (s *poolServer) generate(w http.ResponseWriter, r *http.Request) {
	var req api.GenerateRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	if s.record("load:"+req.Model, "load", req.Model, w, r) {
		_ = json.NewEncoder(w).Encode(api.GenerateResponse{Model: req.Model, Done: true, DoneReason: "load"})
	}
}

func (s *poolServer) chat(w http.ResponseWriter, r *http.Request) {
	var req api.ChatRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	if !s.record("chat:"+req.Model, "chat", req.Model, w, r) {
		return
	}
	s.mu.Lock()
	mid := s.midFail
	s.mu.Unlock()
	enc := json.NewEncoder(w)
	_ = enc.Encode(api.ChatResponse{Model: req.Model, Message: api.Message{Role: "assistant", Content: "from " + s.addr}})
	w.(http.Flusher).Flush()
	if mid {
		_ = enc.Encode(map[string]string{"error": "runner crashed"})
		return
	}
	_ = enc.Encode(api.ChatResponse{Model: req.Model, Done: true, DoneReason: "stop"})
}

// arrival waits for the next request to reach s.
func (s *poolServer) arrival(t *testing.T) string {
	t.Helper()
	select {
	case e := <-s.arrived:
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("no request reached %s", s.addr)
		return ""
	}
}

func (s *poolServer) noArrival(t *testing.T) {
	t.Helper()
	select {
	case e := <-s.arrived:
		t.Fatalf("unexpected %s reached %s", e, s.addr)
	default:
	}
}

func newTestPool(t *testing.T, o PoolOptions, servers ...*poolServer) *Pool {
	t.Helper()
	for _, s := range servers {
		o.URLs = append(o.URLs, s.URL())
	}
	if o.Retry == (RetryPolicy{}) {
		o.Retry = fastRetry
	}
	p := NewPool(o)
	t.Cleanup(p.Close)
	return p
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inRotation(p *Pool, i int) bool { return p.Servers()[i].InRotation }

// The balancing rule, decided by acquire: fewest outstanding for the call's model, then for the
// model on its lane, then in all; ties in turn.
func TestPoolPicksFewestOutstandingForTheModel(t *testing.T) {
	p := NewPool(PoolOptions{URLs: []string{"http://a:1", "http://b:1"}})
	defer p.Close()
	a, b := p.members[0], p.members[1]
	set := func(m *member, model string, lane Lane, n int) {
		for range n {
			m.count(model, lane, 1)
		}
	}
	// A answers three embedding batches, B one question: a question goes to A (no chat there)
	// although A has more in all, an embedding to B.
	set(a, "embed", Background, 3)
	set(b, "chat", Interactive, 1)
	if m := p.acquire("chat", Interactive, nil); m != a {
		t.Fatalf("chat went to %s, want A (no chat outstanding there)", m.name)
	}
	if m := p.acquire("embed", Background, nil); m != b {
		t.Fatalf("embedding went to %s, want B", m.name)
	}
	// Equal for the model: the lane decides (background work spreads over the servers'
	// background lanes instead of queueing behind one).
	p2 := NewPool(PoolOptions{URLs: []string{"http://a:1", "http://b:1"}})
	defer p2.Close()
	a, b = p2.members[0], p2.members[1]
	set(a, "chat", Background, 1)
	set(b, "chat", Interactive, 1)
	if m := p2.acquire("chat", Background, nil); m != b {
		t.Fatalf("background chat went to %s, want B (its background lane is free)", m.name)
	}
	// Ties go in turn.
	p3 := NewPool(PoolOptions{URLs: []string{"http://a:1", "http://b:1", "http://c:1"}})
	defer p3.Close()
	seen := map[string]int{}
	for range 6 {
		m := p3.acquire("embed", Interactive, nil)
		seen[m.name]++
		p3.release(m, "embed", Interactive, nil)
	}
	if seen["0"] != 2 || seen["1"] != 2 || seen["2"] != 2 {
		t.Fatalf("ties not taken in turn: %v", seen)
	}
	// A server out of rotation, or lacking the model, is chosen only when nothing else is left.
	p3.members[0].up = false
	p3.members[1].missing["embed"] = time.Now().Add(time.Minute)
	for range 3 {
		if m := p3.acquire("embed", Interactive, nil); m != p3.members[2] {
			t.Fatalf("went to %s, want the only server in rotation with the model", m.name)
		}
	}
	tried := map[*member]bool{p3.members[2]: true}
	if m := p3.acquire("embed", Interactive, tried); m != p3.members[0] {
		t.Fatalf("after the good one failed: %s, want the one out of rotation (it has the model)", m.name)
	}
}

// Calls in flight spread over the servers, and each server keeps its own lanes: background
// chats hold at most BackgroundMax slots on each, so a question still gets a slot at once.
func TestPoolSpreadsLoadAndKeepsAChatSlotOnEachServer(t *testing.T) {
	a, b := newPoolServer(t), newPoolServer(t)
	release := make(chan any)
	for _, s := range []*poolServer{a, b} {
		s.set(func(s *poolServer) { s.hold["embed"], s.hold["chat"] = release, release })
	}
	p := newTestPool(t, PoolOptions{Options: Options{NumParallel: 2, BackgroundMax: 1}}, a, b)
	ctx := context.Background()

	// Four single-text embeddings at once: two on each server.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := p.Embed(ctx, Interactive, "embed", []string{fmt.Sprintf("t%d", i)}); err != nil {
				t.Error(err)
			}
		})
		// One at a time, so each choice sees the ones before it outstanding.
		waitUntil(t, "embedding arrives", func() bool { return a.requests("embed")+b.requests("embed") == i+1 })
	}
	if a.requests("embed") != 2 || b.requests("embed") != 2 {
		t.Fatalf("embeddings: %d on A, %d on B; want 2 and 2", a.requests("embed"), b.requests("embed"))
	}

	// Three background chats: one on each server, the third waits in a lane (each server's
	// background lane holds one; the second slot of each stays free).
	bg := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := p.Chat(ctx, Background, ChatRequest{Model: "chat", Messages: []Message{{Role: "user", Content: "summarise"}}})
			bg <- err
		}()
	}
	waitUntil(t, "two background chats arrive", func() bool { return a.requests("chat") == 1 && b.requests("chat") == 1 })
	waitUntil(t, "the third queues in a lane", func() bool {
		q := 0
		for _, ps := range p.Pools() {
			if ps.Pool == "chat" {
				q = ps.Queued.Background
			}
		}
		return q == 1
	})
	// A question is not stuck behind them: it reaches a server while the third still waits.
	q := make(chan error, 1)
	go func() {
		_, err := p.Chat(ctx, Interactive, ChatRequest{Model: "chat", Messages: []Message{{Role: "user", Content: "question"}}})
		q <- err
	}()
	waitUntil(t, "the question arrives", func() bool { return a.requests("chat")+b.requests("chat") == 3 })
	close(release)
	if err := <-q; err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-bg; err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// A server that refuses connections leaves the rotation: the call moves to the other at once,
// nothing fails, later calls do not try the dead one. When it listens again it rejoins, with
// the warm-up models loaded before its first call.
func TestPoolFailsOverWhenAServerDiesAndTakesItBack(t *testing.T) {
	a, b := newPoolServer(t), newPoolServer(t)
	reg := prometheus.NewRegistry()
	p := newTestPool(t, PoolOptions{Options: Options{EmbedBatchSize: 4, Metrics: reg},
		Warm: []WarmModel{{Name: "embed", Embedding: true}, {Name: "chat"}}}, a, b)
	ctx := context.Background()

	p.WarmUp(ctx)
	for _, s := range []*poolServer{a, b} {
		if s.requests("load:embed") != 1 || s.requests("load:chat") != 1 {
			t.Fatalf("warm-up on %s: %v", s.addr, s.log)
		}
	}

	a.stop()
	a.set(func(s *poolServer) { s.log = nil })
	in := texts(40)
	start := time.Now()
	vecs, err := p.Embed(ctx, Background, "embed", in)
	if err != nil {
		t.Fatalf("embed with one server dead: %v", err)
	}
	for i, v := range vecs {
		if v[0] != float32(i) {
			t.Fatalf("vector %d out of order", i)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("40 texts took %s with one server dead: the dead one is retried instead of skipped", took)
	}
	if a.requests("embed") != 0 || b.requests("embed") != 10 {
		t.Fatalf("requests: A %d, B %d; want 0 and 10 batches of 4", a.requests("embed"), b.requests("embed"))
	}
	if inRotation(p, 0) || !inRotation(p, 1) {
		t.Fatalf("servers: %+v", p.Servers())
	}
	if e := p.Servers()[0].Error; !strings.Contains(e, "connection refused") {
		t.Fatalf("why A is out: %q", e)
	}
	if fo, _ := seriesValue(reg, "rag_llm_failovers_total", "op", "embed"); fo < 1 {
		t.Fatalf("failovers %v", fo)
	}
	// Its chat calls move too, and Ping still passes on the other server.
	for range 3 {
		if _, err := p.Chat(ctx, Interactive, ChatRequest{Model: "chat", Messages: []Message{{Role: "user", Content: "q"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if b.requests("chat") != 3 {
		t.Fatalf("chats on B: %d", b.requests("chat"))
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("ping with one server up: %v", err)
	}

	// Back: probed, warmed, then in rotation and sharing the calls again.
	a.start()
	waitUntil(t, "A rejoins", func() bool { return inRotation(p, 0) })
	a.mu.Lock()
	log := append([]string(nil), a.log...)
	a.mu.Unlock()
	if len(log) != 2 || log[0] != "load:embed" || log[1] != "load:chat" {
		t.Fatalf("A's requests before it rejoined: %v, want the two warm-up loads", log)
	}
	if _, err := p.Embed(ctx, Background, "embed", texts(16)); err != nil {
		t.Fatal(err)
	}
	if a.requests("embed") == 0 {
		t.Fatal("A back in rotation gets no batches")
	}
}

// A 5xx takes a server out of rotation only until it answers its probe; a server lacking a
// model is avoided for that model without leaving the rotation.
func TestPoolServerErrorsAndMissingModels(t *testing.T) {
	a, b := newPoolServer(t), newPoolServer(t)
	p := newTestPool(t, PoolOptions{}, a, b)
	ctx := context.Background()
	msgs := []Message{{Role: "user", Content: "q"}}

	a.set(func(s *poolServer) { s.status = http.StatusInternalServerError })
	// Until a call lands on A (ties take turns), every answer comes from B.
	for a.requests("chat") == 0 {
		resp, err := p.Chat(ctx, Interactive, ChatRequest{Model: "chat", Messages: msgs})
		if err != nil || !strings.Contains(resp.Content, b.addr) {
			t.Fatalf("chat with A failing: %q, %v", resp.Content, err)
		}
	}
	// That call retried on A (A's own 4 attempts: a 5xx may be the input's fault), then moved.
	if n := a.requests("chat"); n != fastRetry.MaxAttempts {
		t.Fatalf("A got %d chat requests, want %d (one call's attempts)", n, fastRetry.MaxAttempts)
	}
	if p.Servers()[0].Since.IsZero() { // set when a server leaves or rejoins the rotation
		t.Fatal("A answered 500 and never left the rotation")
	}
	// /api/version still answers: A is back after its probe, fails again, and the next time it
	// stays out for a hold-off.
	waitUntil(t, "A rejoins after its probe", func() bool { return inRotation(p, 0) })
	for !strings.Contains(p.Servers()[0].Error, "HTTP 500") {
		if _, err := p.Chat(ctx, Interactive, ChatRequest{Model: "chat", Messages: msgs}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(600 * time.Millisecond) // past two probe intervals, within the 1 s hold-off
	if inRotation(p, 0) {
		t.Fatal("A failed twice in a row and is back at once: no hold-off")
	}

	// A model the server lacks: the call moves, the server stays in rotation for other models.
	a.set(func(s *poolServer) { s.status = 0 })
	b.set(func(s *poolServer) { s.missing["embed"] = true })
	waitUntil(t, "A rejoins", func() bool { return inRotation(p, 0) })
	before := b.requests("embed")
	for range 3 {
		if _, err := p.Embed(ctx, Interactive, "embed", []string{"t1"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.requests("embed") - before; got != 1 {
		t.Fatalf("B asked %d times for a model it lacks, want once (then avoided)", got)
	}
	if !inRotation(p, 1) {
		t.Fatal("a missing model took B out of rotation")
	}
	bChats := b.requests("chat")
	for range 4 {
		if _, err := p.Chat(ctx, Interactive, ChatRequest{Model: "chat", Messages: msgs}); err != nil {
			t.Fatal(err)
		}
	}
	if b.requests("chat") == bChats {
		t.Fatal("B gets no chats although it has the chat model")
	}
}

// A chat that streamed part of its answer is not repeated elsewhere (the user has seen it); the
// failing server still leaves the rotation.
func TestPoolDoesNotRepeatAStreamedChat(t *testing.T) {
	a, b := newPoolServer(t), newPoolServer(t)
	p := newTestPool(t, PoolOptions{}, a, b)
	a.set(func(s *poolServer) { s.midFail = true })
	b.set(func(s *poolServer) { s.midFail = true })
	var got []string
	_, err := p.Chat(context.Background(), Interactive, ChatRequest{Model: "chat", Messages: []Message{{Role: "user", Content: "q"}},
		OnToken: func(s string) error { got = append(got, s); return nil }})
	if err == nil || len(got) != 1 {
		t.Fatalf("err %v, tokens %v", err, got)
	}
	if n := a.requests("chat") + b.requests("chat"); n != 1 {
		t.Fatalf("%d chat requests for one streamed answer", n)
	}
	if s := p.Servers(); s[0].InRotation && s[1].InRotation {
		t.Fatalf("the server that failed mid-stream is still in rotation: %+v", s)
	}
}

// With every server dead, calls fail fast with the connection error (which ingest treats as an
// outage, not the document's fault) and Ping says so.
func TestPoolAllDown(t *testing.T) {
	a, b := newPoolServer(t), newPoolServer(t)
	p := newTestPool(t, PoolOptions{}, a, b)
	a.stop()
	b.stop()
	start := time.Now()
	_, err := p.Embed(context.Background(), Background, "embed", texts(8))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("embed with no server: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s", took)
	}
	if err := p.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "no Ollama server answers") {
		t.Fatalf("ping: %v", err)
	}
	for _, s := range p.Servers() {
		if s.InRotation || s.CheckedAt.IsZero() {
			t.Fatalf("%+v", s)
		}
	}
}

// seriesValue reads one labelled series of a gathered metric (0, false when absent).
func seriesValue(reg prometheus.Gatherer, name, label, value string) (float64, bool) {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					switch {
					case m.Counter != nil:
						return m.Counter.GetValue(), true
					case m.Gauge != nil:
						return m.Gauge.GetValue(), true
					case m.Histogram != nil:
						return float64(m.Histogram.GetSampleCount()), true
					}
				}
			}
		}
	}
	return 0, false
}

// Idle servers share even calls that come one at a time (query embeddings, questions).
func TestPoolSequentialCallsTakeTurns(t *testing.T) {
	a, b := newPoolServer(t), newPoolServer(t)
	p := newTestPool(t, PoolOptions{}, a, b)
	for range 6 {
		if _, err := p.Embed(context.Background(), Interactive, "embed", []string{"t1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Chat(context.Background(), Interactive, ChatRequest{Model: "chat", Messages: []Message{{Role: "user", Content: "q"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if a.requests("embed") != 3 || b.requests("embed") != 3 || a.requests("chat") != 3 || b.requests("chat") != 3 {
		t.Fatalf("embeddings %d/%d, chats %d/%d: want 3 each", a.requests("embed"), b.requests("embed"), a.requests("chat"), b.requests("chat"))
	}
}

// The admin view of a pool: slots summed over the servers, and every server's loaded models,
// each naming its server (a dead server's are missing, the others' still listed).
func TestPoolStatusSumsServers(t *testing.T) {
	a, b := newPoolServer(t), newPoolServer(t)
	p := newTestPool(t, PoolOptions{Options: Options{NumParallel: 2, BackgroundMax: 1, EmbedConcurrency: 2}}, a, b)
	for _, ps := range p.Pools() {
		want := map[string][2]int{"chat": {4, 2}, "embed": {4, 2}}[ps.Pool]
		if ps.Capacity != want[0] || ps.BackgroundMax != want[1] {
			t.Fatalf("%s pool: capacity %d, background max %d; want %v", ps.Pool, ps.Capacity, ps.BackgroundMax, want)
		}
	}
	loaded, err := p.Loaded(context.Background())
	if err != nil || len(loaded) != 2 || loaded[0].Server != "0" || loaded[1].Server != "1" {
		t.Fatalf("loaded %+v, %v", loaded, err)
	}
	a.stop()
	if loaded, err = p.Loaded(context.Background()); err != nil || len(loaded) != 1 || loaded[0].Server != "1" {
		t.Fatalf("loaded with server 0 dead: %+v, %v", loaded, err)
	}
	b.stop()
	if _, err = p.Loaded(context.Background()); err == nil {
		t.Fatal("no server answered, no error")
	}
}

package main

// The baselines: the Python app the guide was written for (VE-RAG-System v0.5.0), reduced to
// what decides its behaviour under a bulk upload, in a child process of the bench.
//
// The app is one asyncio event loop: every request handler and every embedding coroutine
// resumes on that one thread, so /api/health answers only when the loop gets to it. The child
// emulates that with one goroutine, the loop, that runs every piece of application work in
// FIFO order, one at a time:
//
//   - parsing and chunking a document (the same parser and chunker as the server);
//   - building each embedding request and decoding each answer (768 floats of JSON);
//   - the health handler (GET /health answers after the loop has run it);
//   - the chat handler's steps (building the prompt, decoding each streamed line).
//
// Network waits happen off the loop, as awaits do. What is not emulated: Python's own slowness
// (the same work costs Go less), the GIL, and the app's upload path (the documents are in the
// queue when the run starts; the server, by contrast, receives them over HTTP), so the emulation
// favours the baselines.
//
// Ingest per document, as the app does it: embed the chunks in batches of 100 with one
// /api/embeddings call per chunk, all calls of a batch at once (asyncio.gather), each with a new
// HTTP client and a 60 s timeout; a failed call re-sends the whole batch (up to 3 attempts, then
// the document fails). unbounded: 2 documents at a time (arq_max_jobs 2), no limit on calls in
// flight. semaphore-4: the guide's fix, a process-wide asyncio.Semaphore(4) around each call, 3
// documents at a time (arq_max_jobs 3). Vectors are upserted to the same Qdrant (double).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ragstack/rag-operator/internal/chat"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ragstack/rag-operator/internal/serverconfig"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/vector"
)

// baselineSpec is what the bench tells the child.
type baselineSpec struct {
	Strategy      string        `json:"strategy"`
	OllamaURL     string        `json:"ollamaURL"`
	QdrantAddr    string        `json:"qdrantAddr"`
	Collection    string        `json:"collection"`
	Corpus        corpusOptions `json:"corpus"`
	DocWorkers    int           `json:"docWorkers"`
	Semaphore     int           `json:"semaphore"` // 0: unbounded
	Batch         int           `json:"batch"`
	MaxAttempts   int           `json:"maxAttempts"`
	ClientTimeout time.Duration `json:"clientTimeout"`
	ChatTimeout   time.Duration `json:"chatTimeout"`
	ResultPath    string        `json:"resultPath"`
}

func baselineSpecFor(strategy string) baselineSpec {
	s := baselineSpec{Strategy: strategy, Batch: 100, MaxAttempts: 3, ChatTimeout: 60 * time.Second}
	switch strategy {
	case stratUnbounded:
		s.DocWorkers, s.Semaphore = 2, 0
	case stratSemaphore:
		s.DocWorkers, s.Semaphore = 3, 4
	}
	return s
}

// baselineResult is what the child reports when its ingest has finished.
type baselineResult struct {
	DocsDone     int            `json:"docsDone"`
	DocsFailed   int            `json:"docsFailed"`
	Chunks       int            `json:"chunks"`
	Calls        int64          `json:"calls"`
	CallErrors   int64          `json:"callErrors"`
	CallTimeouts int64          `json:"callTimeouts"`
	CallMsP50    float64        `json:"callMsP50"`
	CallMsP99    float64        `json:"callMsP99"`
	CallMsMax    float64        `json:"callMsMax"`
	Seconds      float64        `json:"seconds"` // from start to the last document done
	Failures     map[string]int `json:"failures,omitempty"`
}

// progress is the child's live state, served on /progress outside the loop (it is the bench's
// instrument, not part of the emulated app).
type progress struct {
	Done     int   `json:"done"`
	Failed   int   `json:"failed"`
	Chunks   int   `json:"chunks"`
	Calls    int64 `json:"calls"`
	Finished bool  `json:"finished"`
}

// eventLoop runs tasks one at a time in submission order.
type eventLoop struct{ tasks chan func() }

func newEventLoop() *eventLoop {
	l := &eventLoop{tasks: make(chan func(), 1<<16)}
	go func() {
		for f := range l.tasks {
			f()
		}
	}()
	return l
}

// do runs f on the loop and waits for it.
func (l *eventLoop) do(f func()) {
	done := make(chan struct{})
	l.tasks <- func() { f(); close(done) }
	<-done
}

type baselineApp struct {
	spec  baselineSpec
	loop  *eventLoop
	vec   vector.Store
	sem   chan struct{}
	docs  []document
	start chan struct{}

	mu       sync.Mutex
	prog     progress
	failures map[string]int
	callMs   []float64

	calls, callErrors, callTimeouts atomic.Int64
}

// baselineMain is the child's entry point: baselineMain(specPath). It prints "LISTEN addr",
// waits for POST /start, ingests, writes the result file and serves until SIGTERM.
func baselineMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "baseline: want the spec file as the only argument")
		return 2
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 2
	}
	var spec baselineSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := runBaseline(ctx, spec); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 1
	}
	return 0
}

func runBaseline(ctx context.Context, spec baselineSpec) error {
	c, err := newCorpus(spec.Corpus)
	if err != nil {
		return err
	}
	vec, err := vector.NewQdrant(ctx, vector.QdrantOptions{Addr: spec.QdrantAddr, SkipCompatibilityCheck: true,
		Collection: serverconfig.Collection{Name: spec.Collection, VectorSize: ollamatest.EmbedDim, Distance: "Cosine"}})
	if err != nil {
		return err
	}
	defer vec.Close()
	a := &baselineApp{spec: spec, loop: newEventLoop(), vec: vec, docs: c.Docs, start: make(chan struct{}), failures: map[string]int{}}
	if spec.Semaphore > 0 {
		a.sem = make(chan struct{}, spec.Semaphore)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("LISTEN %s\n", ln.Addr())

	select {
	case <-a.start:
	case <-ctx.Done():
		return nil
	case <-time.After(5 * time.Minute):
		return errors.New("no POST /start within 5 minutes")
	}
	res := a.ingest(ctx)
	out, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(spec.ResultPath, out, 0o644); err != nil {
		return err
	}
	a.mu.Lock()
	a.prog.Finished = true
	a.mu.Unlock()
	<-ctx.Done() // keep serving health and chat (idle measurements) until the bench stops us
	return nil
}

func (a *baselineApp) routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		a.loop.do(func() {}) // the handler coroutine runs when the loop gets to it
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"healthy"}` + "\n"))
	})
	m.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-a.start:
		default:
			close(a.start)
		}
	})
	m.HandleFunc("GET /progress", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		p := a.prog
		p.Calls = a.calls.Load()
		a.mu.Unlock()
		json.NewEncoder(w).Encode(p)
	})
	m.HandleFunc("POST /chat", a.chat)
	return m
}

// newClient is the app's habit: a new HTTP client (and connection) for every call.
func (a *baselineApp) newClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

// embedOne is the app's embed(text): one /api/embeddings call, through the semaphore if any.
func (a *baselineApp) embedOne(ctx context.Context, text string, throttled bool) ([]float32, error) {
	if throttled && a.sem != nil {
		select {
		case a.sem <- struct{}{}:
			defer func() { <-a.sem }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var body []byte
	a.loop.do(func() {
		body, _ = json.Marshal(map[string]any{"model": embedModel, "prompt": text})
	})
	start := time.Now()
	a.calls.Add(1)
	client := a.newClient(a.spec.ClientTimeout)
	raw, err := postRaw(ctx, client, a.spec.OllamaURL+"/api/embeddings", body)
	d := time.Since(start)
	a.mu.Lock()
	a.callMs = append(a.callMs, ms(d))
	a.mu.Unlock()
	if err != nil {
		a.callErrors.Add(1)
		if isTimeout(err) {
			a.callTimeouts.Add(1)
		}
		return nil, err
	}
	var out struct {
		Embedding []float32 `json:"embedding"`
	}
	a.loop.do(func() { err = json.Unmarshal(raw, &out) })
	if err == nil && len(out.Embedding) == 0 {
		err = errors.New("empty embedding")
	}
	return out.Embedding, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func (a *baselineApp) ingest(ctx context.Context) baselineResult {
	start := time.Now()
	queue := make(chan document, len(a.docs))
	for _, d := range a.docs {
		queue <- d
	}
	close(queue)
	var wg sync.WaitGroup
	for range a.spec.DocWorkers {
		wg.Go(func() {
			for d := range queue {
				if ctx.Err() != nil {
					return
				}
				err := a.processDoc(ctx, d)
				a.mu.Lock()
				if err != nil {
					a.prog.Failed++
					a.failures[firstLine(err.Error())]++
				} else {
					a.prog.Done++
					a.prog.Chunks += len(d.Chunks)
				}
				a.mu.Unlock()
			}
		})
	}
	wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	calls := slices.Clone(a.callMs)
	return baselineResult{
		DocsDone: a.prog.Done, DocsFailed: a.prog.Failed, Chunks: a.prog.Chunks,
		Calls: a.calls.Load(), CallErrors: a.callErrors.Load(), CallTimeouts: a.callTimeouts.Load(),
		CallMsP50: percentile(calls, 50), CallMsP99: percentile(calls, 99), CallMsMax: percentile(calls, 100),
		Seconds: time.Since(start).Seconds(), Failures: a.failures,
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160]
	}
	return s
}

// processDoc is the app's document job: parse and chunk (on the loop), embed in gathered
// batches with whole-batch retries, upsert.
func (a *baselineApp) processDoc(ctx context.Context, d document) error {
	var texts []string
	a.loop.do(func() {
		c, err := chunkDocument(d.Data)
		if err == nil {
			for _, ch := range c {
				texts = append(texts, ch.Text)
			}
		}
	})
	if len(texts) == 0 {
		return errors.New("no chunks")
	}
	vecs := make([][]float32, len(texts))
	for lo := 0; lo < len(texts); lo += a.spec.Batch {
		hi := min(lo+a.spec.Batch, len(texts))
		var err error
		for attempt := 1; attempt <= a.spec.MaxAttempts; attempt++ {
			if err = a.gather(ctx, texts[lo:hi], vecs[lo:hi]); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("embedding batch failed after %d attempts: %w", a.spec.MaxAttempts, err)
		}
	}
	points := make([]vector.Chunk, len(texts))
	for i, t := range texts {
		points[i] = vector.Chunk{DocumentID: d.Name, Name: d.Name, ChunkIndex: i, Text: t, Vector: vecs[i]}
	}
	uctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := a.vec.Upsert(uctx, points); err != nil {
		return fmt.Errorf("upsert: %w", err)
	}
	return nil
}

// gather is asyncio.gather over one call per text; the first error fails the batch (the other
// calls still run to completion, as gather without return_exceptions lets them).
func (a *baselineApp) gather(ctx context.Context, texts []string, out [][]float32) error {
	var wg sync.WaitGroup
	errs := make([]error, len(texts))
	for i, t := range texts {
		wg.Go(func() { out[i], errs[i] = a.embedOne(ctx, t, true) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// chat is the app's chat route: embed the question (not throttled: the semaphore guards only
// the batch path), search (the app's top 8, score ≥ 0.3, ≤ 3 per document, as the server's
// defaults), prompt, stream Ollama's answer (the app did not stream; relaying the
// first piece is what lets the bench see when the answer started).
func (a *baselineApp) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Question string `json:"question"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Question == "" {
		http.Error(w, "want {\"question\": ...}", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.spec.ChatTimeout)
	defer cancel()
	fail := func(err error) {
		fmt.Fprintf(w, "event: error\ndata: %q\n\n", err.Error())
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	start := time.Now()
	var tm chat.Timings
	step := start
	qv, err := a.embedOne(ctx, req.Question, false)
	tm.Embed = ms(time.Since(step))
	if err != nil {
		fail(fmt.Errorf("query embedding: %w", err))
		return
	}
	// The app's retrieval: top 8, score ≥ 0.3, at most 3 chunks per document.
	step = time.Now()
	found, err := a.vec.Search(ctx, qv, vector.SearchOptions{Limit: 24, ScoreThreshold: 0.3})
	tm.Search = ms(time.Since(step))
	if err != nil {
		fail(fmt.Errorf("search: %w", err))
		return
	}
	var hits []vector.Hit
	perDoc := map[string]int{}
	for _, h := range found {
		if len(hits) < 8 && perDoc[h.DocumentID] < 3 {
			perDoc[h.DocumentID]++
			hits = append(hits, h)
		}
	}
	var body map[string]any
	step = time.Now()
	a.loop.do(func() {
		var b strings.Builder
		for i, h := range hits {
			fmt.Fprintf(&b, "[%d] %s\n\n", i+1, h.Text)
		}
		body = ollamaChatBody(ragSystemPrompt, b.String(), req.Question)
	})
	tm.Prompt = ms(time.Since(step))
	client := a.newClient(a.spec.ChatTimeout)
	sent := time.Now()
	st, err := streamOllamaChat(ctx, client, a.spec.OllamaURL, body, a.loop.do, func(piece string) {
		p, _ := json.Marshal(map[string]string{"content": piece})
		fmt.Fprintf(w, "event: token\ndata: %s\n\n", p)
		if flusher != nil {
			flusher.Flush()
		}
	})
	if err != nil {
		fail(err)
		return
	}
	tm.FirstToken, tm.Load, tm.PromptEval, tm.Total = ms(st.First.Sub(sent)), ms(st.Load), ms(st.PromptEval), ms(time.Since(start))
	done, _ := json.Marshal(map[string]any{"timings": tm, "usage": map[string]int{"prompt_tokens": st.PromptTokens}})
	fmt.Fprintf(w, "event: done\ndata: %s\n\n", done)
}

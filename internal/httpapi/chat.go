package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/chat"
	"github.com/ragstack/rag-operator/internal/llm"
	"github.com/ragstack/rag-operator/internal/store"
)

// Answerer is what the chat routes need from internal/chat (*chat.Answerer).
type Answerer interface {
	Answer(ctx context.Context, req chat.Request) (chat.Response, error)
}

func (c Config) chatDefaults() Config {
	if c.ChatModel == "" {
		c.ChatModel = "rag"
	}
	if c.RagTimeout <= 0 {
		c.RagTimeout = 5 * time.Minute
	}
	if c.MaxChatBytes < 1 {
		c.MaxChatBytes = 64 << 10
	}
	if c.MaxCompletionBytes < 1 {
		c.MaxCompletionBytes = 1 << 20
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.MaxSessionsPerKey < 1 {
		c.MaxSessionsPerKey = 1000
	}
	if c.MaxSessionTurns < 1 {
		c.MaxSessionTurns = 200
	}
	return c
}

// chatMetrics are the answering series: time to first token (what a user feels) and answers
// by outcome (what went wrong, and how often the cache and the no-context path answer).
type chatMetrics struct {
	ttft    prometheus.Histogram
	answers *prometheus.CounterVec   // api, outcome
	steps   *prometheus.HistogramVec // step: where the time before the first token went
}

func newChatMetrics() chatMetrics {
	return chatMetrics{
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rag_chat_time_to_first_token_seconds",
			Help:    "Time from a chat request to the model's first token (cached and no-context answers excluded).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 3, 5, 10, 20, 30, 60, 120},
		}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rag_chat_answers_total",
			Help: "Chat requests by API (chat, openai) and outcome (ok, cached, no_context, canceled, busy, timeout, too_long, empty, error, unavailable).",
		}, []string{"api", "outcome"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rag_chat_step_seconds",
			Help:    "Time of each step before an answer's first token: embed (the question), search, prompt (fitting the budget), first_token (chat request to first token: slot wait, load, prefill).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30},
		}, []string{"step"}),
	}
}

func (m chatMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.ttft, m.answers, m.steps)
}

// observeSteps records an answer's step times (a cached answer has none).
func (m chatMetrics) observeSteps(t chat.Timings) {
	for _, st := range []struct {
		name string
		ms   float64
	}{{"embed", t.Embed}, {"search", t.Search}, {"prompt", t.Prompt}, {"first_token", t.FirstToken}} {
		if st.ms > 0 {
			m.steps.WithLabelValues(st.name).Observe(st.ms / 1000)
		}
	}
}

// Source is a source as the chat APIs show it: a stored chunk, with page (0: the format has no
// pages) and section ("": none) always present so clients need not probe for them.
type Source struct {
	DocumentID string  `json:"document_id"`
	Name       string  `json:"name"`
	ChunkIndex int     `json:"chunk_index"`
	Snippet    string  `json:"snippet"`
	Score      float32 `json:"score"`
	Page       int     `json:"page"`
	Section    string  `json:"section"`
}

func sources(cs []chat.Citation) []Source {
	out := make([]Source, len(cs))
	for i, c := range cs {
		out[i] = Source{DocumentID: c.DocumentID, Name: c.Name, ChunkIndex: c.ChunkIndex, Snippet: c.Snippet,
			Score: c.Score, Page: c.Page, Section: c.Section}
	}
	return out
}

// ChatRequest is the body of POST /api/chat.
type ChatRequest struct {
	Question string `json:"question"`
	// History is the conversation so far, oldest first, roles user and assistant. Not with
	// SessionID, whose stored turns are the history.
	History   []llm.Message `json:"history,omitempty"`
	SessionID string        `json:"session_id,omitempty"`
	// Tags narrow retrieval to documents carrying one of them; a user key may name only its own.
	Tags   []string `json:"tags,omitempty"`
	Stream bool     `json:"stream,omitempty"`
}

// ChatResponse is the body of a non-streamed answer and the data of the stream's done event.
type ChatResponse struct {
	Answer string `json:"answer"`
	// Sources are the sources the answer cites, in order of first citation.
	Sources []Source `json:"sources"`
	// Context are the retrieved sources the model was given (the search results, best first).
	Context   []Source   `json:"context"`
	Usage     chat.Usage `json:"usage"`
	NoContext bool       `json:"no_context"`
	Cached    bool       `json:"cached"`
	SessionID string     `json:"session_id,omitempty"`
	// Timings is where the answer's time went (milliseconds per step before the first token).
	Timings chat.Timings `json:"timings"`
}

// chatTags is the retrieval filter of a request: the key's own visibility (nil for an admin,
// its tags for a user), narrowed to requested when given. Naming a tag the key does not have
// is refused rather than silently dropped, as for uploads, so a typo does not quietly search
// less than the caller thinks.
func chatTags(p auth.Principal, requested []string) ([]string, int, error) {
	tags, err := parseTags(requested)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	if len(tags) == 0 {
		return p.SearchTags(), 0, nil
	}
	if !p.IsAdmin() {
		for _, t := range tags {
			if !slices.Contains(p.Tags, t) {
				return nil, http.StatusForbidden, fmt.Errorf("key %q may not search tag %q", p.Name, t)
			}
		}
	}
	return tags, 0, nil
}

// answerError maps an Answer error onto a status, a message safe to show, and an outcome label.
// Anything unexpected (Ollama or the vector store failing) is 502: the server itself is fine,
// a dependency is not; the details go to the log, not to the client.
func answerError(err error) (code int, msg, outcome string) {
	switch {
	case errors.Is(err, chat.ErrEmptyQuestion):
		return http.StatusBadRequest, "question is empty", "empty"
	case errors.Is(err, chat.ErrQuestionTooLong):
		return http.StatusRequestEntityTooLarge, err.Error(), "too_long"
	case errors.Is(err, llm.ErrBusy):
		return http.StatusTooManyRequests, "the chat model is busy; retry later", "busy"
	case errors.Is(err, chat.ErrTimeout):
		return http.StatusGatewayTimeout, "the answer took longer than the server's ragTimeout", "timeout"
	}
	return http.StatusBadGateway, "answering failed: the language model or the vector store did not answer", "error"
}

// sseStream writes Server-Sent Events. It opens (status 200, headers) lazily, at the first
// write, so that a failure before anything was streamed — a full queue, an unreachable Ollama —
// still gets its own status code; after that only an error event can report it. Writes are
// serialised (tokens and heartbeats come from different goroutines) and each is flushed, so a
// token reaches the client as it is generated rather than when a buffer fills.
type sseStream struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
	onOpen       func(io.Writer) error // written right after the headers (OpenAI's role chunk)

	mu        sync.Mutex
	open      bool
	err       error // the first write error: the client is gone
	lastWrite time.Time
}

func newSSE(w http.ResponseWriter, writeTimeout time.Duration, onOpen func(io.Writer) error) *sseStream {
	return &sseStream{w: w, rc: http.NewResponseController(w), writeTimeout: writeTimeout, onOpen: onOpen}
}

// opened reports whether the status line went out.
func (s *sseStream) opened() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// write opens the stream if needed, runs f on it and flushes.
func (s *sseStream) write(f func(io.Writer) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if !s.open {
		s.open = true
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the whole answer
		h.Set("X-Content-Type-Options", "nosniff")
		// The server's WriteTimeout counts from the request; an answer may stream for up to
		// ragTimeout. Not every writer supports deadlines (httptest recorders); that is fine.
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		s.w.WriteHeader(http.StatusOK)
		if s.onOpen != nil {
			if err := s.onOpen(s.w); err != nil {
				s.err = err
				return err
			}
		}
	}
	if err := f(s.w); err != nil {
		s.err = err
		return err
	}
	if err := s.rc.Flush(); err != nil {
		s.err = err
		return err
	}
	s.lastWrite = time.Now()
	return nil
}

// heartbeat sends an SSE comment whenever nothing was written for every (opening the stream if
// needed), until stop is called. Comments are ignored by SSE clients; they keep proxies and load
// balancers from closing a connection that is idle while the model loads or thinks.
func (s *sseStream) heartbeat(every time.Duration) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	started := time.Now()
	wg.Go(func() {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				s.mu.Lock()
				last := s.lastWrite
				s.mu.Unlock()
				if last.IsZero() {
					last = started
				}
				if now.Sub(last) >= every {
					if s.write(func(w io.Writer) error { _, err := io.WriteString(w, ": keep-alive\n\n"); return err }) != nil {
						return
					}
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// sseEvent writes one named event whose data is v as JSON. json.Marshal escapes every line
// break inside strings, so the data is always a single data: line.
func sseEvent(w io.Writer, event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	return err
}

// sseData writes one unnamed event (the OpenAI form); raw is written as is.
func sseData(w io.Writer, v any) error {
	var b []byte
	if raw, ok := v.(string); ok {
		b = []byte(raw)
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "data: %s\n\n", b)
	return err
}

// answerRun is one answer being produced for an API.
type answerRun struct {
	api    string     // "chat" or "openai": metrics and logs
	stream *sseStream // nil: not streamed
	// token writes one piece of the answer to the stream.
	token func(w io.Writer, content string) error
}

// answer runs the Answerer on the request's context: a client that goes away cancels the
// Ollama request (its slot is freed at once), and a stream write failing does the same by
// aborting the answer. It records metrics and logs the outcome.
func (s *Server) answer(r *http.Request, run answerRun, req chat.Request) (chat.Response, error) {
	start := time.Now()
	var first time.Time
	waiting := func() {}
	if s.d.SLO != nil {
		waiting = s.d.SLO.ChatStarted()
	}
	req.Stream = func(tok string) error {
		if first.IsZero() {
			first = time.Now()
			waiting()
		}
		if run.stream == nil {
			return nil
		}
		return run.stream.write(func(w io.Writer) error { return run.token(w, tok) })
	}
	stop := func() {}
	if run.stream != nil {
		stop = run.stream.heartbeat(s.cfg.Heartbeat)
	}
	resp, err := s.d.Chat.Answer(r.Context(), req)
	stop()
	waiting()

	outcome := "ok"
	switch {
	case err != nil && r.Context().Err() != nil:
		outcome = "canceled"
	case err != nil:
		_, _, outcome = answerError(err)
	case resp.Cached:
		outcome = "cached"
	case resp.NoContext:
		outcome = "no_context"
	}
	s.chatM.answers.WithLabelValues(run.api, outcome).Inc()
	s.chatM.observeSteps(resp.Timings)
	if !first.IsZero() && !resp.Cached && !resp.NoContext {
		s.chatM.ttft.Observe(first.Sub(start).Seconds())
		if s.d.SLO != nil {
			s.d.SLO.ObserveChatTTFT(first.Sub(start))
		}
	}
	attrs := []any{"api", run.api, "key", principal(r).Name, "outcome", outcome, "stream", run.stream != nil,
		"sources", len(resp.Sources), "context", len(resp.Context), "promptTokens", resp.Usage.PromptTokens,
		"completionTokens", resp.Usage.CompletionTokens, "seconds", time.Since(start).Seconds()}
	if !first.IsZero() {
		attrs = append(attrs, "firstTokenSeconds", first.Sub(start).Seconds())
	}
	if t := resp.Timings; t.Total > 0 {
		attrs = append(attrs, "embedMs", t.Embed, "searchMs", t.Search, "promptMs", t.Prompt, "modelFirstTokenMs", t.FirstToken,
			"loadMs", t.Load, "promptEvalMs", t.PromptEval)
	}
	switch outcome {
	case "error":
		s.log.Error("Answering failed", append(attrs, "error", err)...)
	case "timeout", "busy":
		s.log.Warn("Answer not given", append(attrs, "error", err)...)
	default:
		s.log.Info("Answered", attrs...)
	}
	return resp, err
}

// chat serves POST /api/chat: the answer as JSON, or with "stream": true as SSE — token events
// ({"content"}) as generated, then one done event (ChatResponse), or an error event
// ({"error", "status"}) when it fails after the stream opened.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var body ChatRequest
	if !decodeJSON(w, r, s.cfg.MaxChatBytes, &body) {
		return
	}
	p := principal(r)
	tags, code, err := chatTags(p, body.Tags)
	if err != nil {
		writeError(w, code, "%v", err)
		return
	}
	for _, m := range body.History {
		if m.Role != "user" && m.Role != "assistant" {
			writeError(w, http.StatusBadRequest, `history roles must be "user" or "assistant", got %q`, m.Role)
			return
		}
	}
	history := body.History
	if body.SessionID != "" {
		if len(body.History) > 0 {
			writeError(w, http.StatusBadRequest, "give history or session_id, not both: a session's history is its stored turns")
			return
		}
		turns, err := s.d.Store.SessionTurns(r.Context(), p.Name, body.SessionID, s.cfg.MaxSessionTurns)
		if errors.Is(err, store.ErrSessionNotFound) {
			writeError(w, http.StatusNotFound, "session not found")
			return
		}
		if err != nil {
			s.internal(w, err)
			return
		}
		history = turnsToHistory(turns)
	}
	if s.answerUnavailable(w, "chat", writeError) {
		return
	}

	run := answerRun{api: "chat"}
	if body.Stream {
		run.stream = newSSE(w, s.cfg.RagTimeout+30*time.Second, nil)
		run.token = func(w io.Writer, content string) error {
			return sseEvent(w, "token", map[string]string{"content": content})
		}
	}
	resp, err := s.answer(r, run, chat.Request{Question: body.Question, History: history, Tags: tags})
	if err != nil {
		if r.Context().Err() != nil {
			return // the client is gone: nobody to tell
		}
		code, msg, _ := answerError(err)
		if run.stream != nil && run.stream.opened() {
			run.stream.write(func(w io.Writer) error {
				return sseEvent(w, "error", map[string]any{"error": msg, "status": code})
			})
			return
		}
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", fmt.Sprint(int(s.cfg.RetryAfter/time.Second)))
		}
		writeError(w, code, "%s", msg)
		return
	}
	out := ChatResponse{Answer: resp.Answer, Sources: sources(resp.Sources), Context: sources(resp.Context),
		Usage: resp.Usage, NoContext: resp.NoContext, Cached: resp.Cached, SessionID: body.SessionID, Timings: resp.Timings}
	if body.SessionID != "" {
		s.appendTurn(r.Context(), p.Name, body.SessionID, body.Question, out)
	}
	if run.stream != nil {
		run.stream.write(func(w io.Writer) error { return sseEvent(w, "done", out) })
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// appendTurn records an answered turn. A failure is logged, not returned: the answer is good
// and the client is waiting for it; losing it over a history write would be worse.
func (s *Server) appendTurn(ctx context.Context, owner, sessionID, question string, out ChatResponse) {
	src, _ := json.Marshal(out.Sources)
	_, err := s.d.Store.AppendTurn(context.WithoutCancel(ctx), owner, sessionID, store.Turn{
		Question: strings.TrimSpace(question), Answer: out.Answer, Sources: string(src), NoContext: out.NoContext,
	}, s.cfg.MaxSessionTurns)
	if err != nil && !errors.Is(err, store.ErrSessionNotFound) { // deleted meanwhile: nothing to keep
		s.log.Error("Failed to record a session turn", "session", sessionID, "error", err)
	}
}

// turnsToHistory turns stored turns into the conversation the budget takes history from.
func turnsToHistory(turns []store.Turn) []llm.Message {
	h := make([]llm.Message, 0, 2*len(turns))
	for _, t := range turns {
		h = append(h, llm.Message{Role: "user", Content: t.Question}, llm.Message{Role: "assistant", Content: t.Answer})
	}
	return h
}

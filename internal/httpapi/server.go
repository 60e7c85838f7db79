// Package httpapi is the RAG server's HTTP interface: the document, chat and session APIs and
// the OpenAI-compatible /v1 routes behind bearer-key auth, the open /healthz and /readyz, and
// /metrics for admin keys (MetricsHandler serves it without a key on a separate listener).
//
// Status codes: 202 accepted upload (per-file results); 400 bad form, query or JSON; 401 no or
// bad key; 403 the key's role or tags do not allow it; 404 no such document or session (or not
// visible to the key); 409 duplicate content (with the existing id) or a document being
// deleted; 413 file, body, inflated archive or question too large; 415 type not allowed or
// content not matching its type, or a wrong Content-Type; 422 a file of an allowed type that
// cannot be read; 429 + Retry-After when the chat model's queue is full or a key has too many
// sessions; 405 (JSON, with Allow) for a method a route does not serve; 408 when an upload
// body arrives slower than uploads.minBytesPerSecond; 507 + Retry-After when the data volume is
// read-only or below uploads.minFreeBytes (uploads only); 502 when answering failed at Ollama or the vector store; 503 + Retry-After when the
// ingest queue or upload slots are full, or when a question needs Ollama or the vector store
// and its last probe failed; 504 when an answer took longer than ragTimeout.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/parse"
	"github.com/ragstack/rag-operator/internal/store"
)

func isLetterOrDigit(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// Config bounds what the API accepts.
type Config struct {
	MaxFileBytes int64    // uploads.maxFileBytes
	MaxFiles     int      // uploads.maxFilesPerRequest
	AllowedTypes []string // uploads.allowedTypes (extensions)
	MaxQueued    int      // limits.maxQueuedDocuments
	// MaxConcurrentUploads bounds uploads being received at once; more get 503. Default 16.
	MaxConcurrentUploads int
	// MaxUploadsPerKey bounds one API key's uploads being received at once (one client
	// address's without auth); more get 503. Default 4.
	MaxUploadsPerKey int
	// MaxRequestBytes bounds one upload request's body, checked against Content-Length before
	// reading and while reading (413). Default 512 MiB, and at least MaxFileBytes + 1 MiB.
	MaxRequestBytes int64
	// SpoolBytes bounds what all uploads in progress hold on the data volume before they are
	// stored (503 beyond). Default 1 GiB; keep it at least MaxRequestBytes.
	SpoolBytes int64
	// MinFreeBytes: with less free on the data volume uploads are refused (507). Default 1 GiB;
	// negative: no threshold (write errors still give 507).
	MinFreeBytes int64
	// RateGrace is how long an upload body may take before MinBytesPerSecond counts. Default 10s.
	RateGrace time.Duration
	// MinBytesPerSecond is the slowest average rate an upload body may arrive at after a 10 s
	// grace (and no pause over 60 s); slower is 408. Default 16 KiB/s; negative: no minimum.
	MinBytesPerSecond int64
	// MaxJSONBytes bounds JSON request bodies. Default 64 KiB.
	MaxJSONBytes int64
	// RetryAfter is sent with 503. Default 10s.
	RetryAfter time.Duration
	// ValidateTimeout bounds checking one uploaded file. Default 60s.
	ValidateTimeout time.Duration

	// ChatModel is the model id /v1/models lists and /v1 responses name (the chat variant).
	// Default "rag".
	ChatModel string
	// ModelAliases are other names /v1 requests may use for ChatModel (listed by /v1/models);
	// any other model name is 404 model_not_found.
	ModelAliases []string
	// RagTimeout is the answer deadline the Answerer applies; a streamed answer's writes are
	// allowed that long plus a margin, so a client that stops reading cannot hold the handler.
	// Default 5m.
	RagTimeout time.Duration
	// MaxChatBytes bounds /api/chat bodies. Default 64 KiB: a question the budget accepts is a
	// few KiB, and a session's history is read from the store, not sent.
	MaxChatBytes int64
	// MaxCompletionBytes bounds /v1/chat/completions bodies. Default 1 MiB: chat UIs resend the
	// whole conversation each time, of which only the newest turns that fit the history
	// allowance are used.
	MaxCompletionBytes int64
	// Heartbeat is how long a streamed answer may go without a token before the stream is
	// opened and an SSE comment sent, so proxies do not cut an idle connection while the model
	// loads. Until then failures still get their own status code. Default 15s; negative: never.
	Heartbeat time.Duration
	// MaxSessionsPerKey bounds the sessions one API key may keep (429 beyond). Default 1000.
	MaxSessionsPerKey int
	// MaxSessionTurns is how many turns a session keeps (the oldest go first). Default 200.
	MaxSessionTurns int
}

// Pipeline is what the API needs from internal/ingest.
type Pipeline interface {
	Notify()
	Delete(ctx context.Context, id string) error
	Reprocess(ctx context.Context, id string) (store.Document, error)
	SetTags(ctx context.Context, id string, tags []string) (store.Document, error)
}

// Validator checks an upload's content (internal/parse.Parser).
type Validator interface {
	Validate(ctx context.Context, t parse.Type, r io.ReaderAt, size int64) error
}

// Deps are the server's collaborators.
type Deps struct {
	Store     store.Store
	Pipeline  Pipeline
	Validator Validator
	Auth      auth.Authenticator
	Ready     *Readiness
	// Registry serves /metrics and receives the HTTP series.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Chat answers questions (internal/chat.Answerer). Without it the chat and /v1 routes are
	// not served (404); sessions are.
	Chat Answerer
	// Console feeds the routes the web UI needs (console.go); nil reports them unavailable.
	Console *Console
	// Space reports the data volume (tests); nil: Store.Space.
	Space func() (store.Space, error)
	// SLO receives every model answer's time to first token, and the questions still waiting
	// for one (internal/slo.Tracker); nil: none.
	SLO interface {
		ObserveChatTTFT(time.Duration)
		ChatStarted() (done func())
	}
}

// Server serves the API.
type Server struct {
	cfg     Config
	d       Deps
	allowed map[parse.Type]bool
	uploads chan struct{}
	slotsMu sync.Mutex
	perKey  map[string]int // uploads in progress per key (or client address)
	spooled atomic.Int64   // bytes of uploads in progress on the data volume
	latency *prometheus.HistogramVec
	chatM   chatMetrics
	started time.Time // for /v1/models' created
	log     *slog.Logger
	mux     *http.ServeMux
}

// New checks the config (an allowed type the server cannot parse is an error naming
// uploads.allowedTypes) and builds the routes.
func New(cfg Config, d Deps) (*Server, error) {
	if cfg.MaxConcurrentUploads < 1 {
		cfg.MaxConcurrentUploads = 16
	}
	if cfg.MaxUploadsPerKey < 1 {
		cfg.MaxUploadsPerKey = 4
	}
	if cfg.MaxRequestBytes < 1 {
		cfg.MaxRequestBytes = 512 << 20
	}
	cfg.MaxRequestBytes = max(cfg.MaxRequestBytes, cfg.MaxFileBytes+1<<20)
	if cfg.SpoolBytes < 1 {
		cfg.SpoolBytes = 1 << 30
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 1 << 30
	}
	cfg.MinFreeBytes = max(cfg.MinFreeBytes, 0)
	if cfg.MinBytesPerSecond == 0 {
		cfg.MinBytesPerSecond = 16 << 10
	}
	if cfg.RateGrace <= 0 {
		cfg.RateGrace = 10 * time.Second
	}
	if cfg.MaxJSONBytes < 1 {
		cfg.MaxJSONBytes = 64 << 10
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 10 * time.Second
	}
	if cfg.ValidateTimeout <= 0 {
		cfg.ValidateTimeout = time.Minute
	}
	cfg = cfg.chatDefaults()
	if cfg.MaxFiles < 1 || cfg.MaxFileBytes < 1 {
		return nil, errors.New("uploads.maxFilesPerRequest and uploads.maxFileBytes must be at least 1")
	}
	allowed := map[parse.Type]bool{}
	for _, ext := range cfg.AllowedTypes {
		t, err := parse.TypeOf("x." + ext)
		if err != nil {
			return nil, fmt.Errorf("uploads.allowedTypes: %q is not a type the server can parse (supported: %v)", ext, parse.Supported)
		}
		allowed[t] = true
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	s := &Server{
		cfg: cfg, d: d, allowed: allowed, log: d.Logger,
		uploads: make(chan struct{}, cfg.MaxConcurrentUploads),
		perKey:  map[string]int{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rag_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and status code.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method", "code"}),
		chatM:   newChatMetrics(),
		started: time.Now(),
	}
	if d.Registry != nil {
		d.Registry.MustRegister(s.latency)
		s.chatM.register(d.Registry)
		if d.Ready != nil {
			d.Registry.MustRegister(d.Ready)
		}
		d.Registry.MustRegister(s.storageMetrics()...)
	}
	if d.Ready != nil {
		d.Ready.AddCheck(Check{Name: DepStorage, Probe: s.StorageProbe})
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	api := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, auth.Middleware(s.d.Auth, h)) }
	if s.d.Registry != nil {
		// The series name the stack's parts and count documents per status: not for anyone who
		// can reach the API port. Prometheus scrapes the separate metrics listener instead.
		metrics := s.metricsHandler()
		api("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			if !principal(r).IsAdmin() {
				writeError(w, http.StatusForbidden, "only an admin key may read the metrics (Prometheus scrapes the metrics port, metricsListen)")
				return
			}
			metrics.ServeHTTP(w, r)
		})
	}
	api("POST /api/documents", s.upload)
	api("GET /api/documents", s.list)
	api("GET /api/documents/{id}", s.get)
	api("DELETE /api/documents/{id}", s.delete)
	api("POST /api/documents/{id}/reprocess", s.reprocess)
	api("PATCH /api/documents/{id}/tags", s.setTags)
	api("POST /api/sessions", s.createSession)
	api("GET /api/sessions", s.listSessions)
	api("GET /api/sessions/{id}", s.getSession)
	api("DELETE /api/sessions/{id}", s.deleteSession)
	api("GET /api/health/dependencies", s.dependencies)
	openai := func(pattern string, h http.HandlerFunc) {
		m.Handle(pattern, auth.MiddlewareWith(s.d.Auth, h, func(w http.ResponseWriter, msg string) {
			writeOpenAIError(w, http.StatusUnauthorized, "%s", msg)
		}))
	}
	if s.d.Chat != nil {
		api("POST /api/chat", s.chat)
		openai("POST /v1/chat/completions", s.completions)
		openai("GET /v1/models", s.models)
		openai("GET /v1/models/{id}", s.model)
	}
	s.consoleRoutes(m, api)
	s.mux = m
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.d.Registry, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}

// MetricsHandler serves GET /metrics and GET /healthz without a key, and nothing else: the
// separate metrics listener (metricsListen), which only Prometheus is meant to reach (a
// NetworkPolicy can then open that port alone to it).
func (s *Server) MetricsHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", s.healthz)
	if s.d.Registry != nil {
		m.Handle("GET /metrics", s.metricsHandler())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if _, pattern := m.Handler(r); pattern == "" {
			m.ServeHTTP(&routeErrorWriter{ResponseWriter: w, r: r}, r)
			return
		}
		m.ServeHTTP(w, r)
	})
}

// Handler is the whole API with panic recovery and latency metrics.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		securityHeaders(w.Header())
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("Panic serving a request", "path", r.URL.Path, "panic", v)
				if !rw.wrote {
					writeError(rw, http.StatusInternalServerError, "internal error")
				}
			}
			route := r.Pattern // set by the mux on this request
			if route == "" {
				route = "unmatched"
			}
			s.latency.WithLabelValues(route, r.Method, strconv.Itoa(rw.code)).Observe(time.Since(start).Seconds())
		}()
		if _, pattern := s.mux.Handler(r); pattern == "" {
			// The mux's own 404 and 405 are plain text; clients of a JSON API (and OpenAI's
			// SDKs under /v1) expect its error shape.
			s.mux.ServeHTTP(&routeErrorWriter{ResponseWriter: rw, r: r}, r)
			return
		}
		s.mux.ServeHTTP(rw, r)
	})
}

// routeErrorWriter turns the mux's plain-text 404 and 405 into the API's JSON error (OpenAI's
// shape under /v1/) and drops the text the mux writes after them.
type routeErrorWriter struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (w *routeErrorWriter) WriteHeader(code int) {
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	msg := "no such route: " + w.r.Method + " " + w.r.URL.Path
	if code == http.StatusMethodNotAllowed {
		msg = fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", w.r.Method, w.r.URL.Path, w.Header().Get("Allow"))
	}
	if strings.HasPrefix(w.r.URL.Path, "/v1/") || w.r.URL.Path == "/v1" {
		writeOpenAIError(w.ResponseWriter, code, "%s", msg)
		return
	}
	writeError(w.ResponseWriter, code, "%s", msg)
}

func (w *routeErrorWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// healthz is liveness: it answers from memory and touches no dependency, so a slow Ollama,
// Qdrant or disk can never get the pod restarted.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}` + "\n"))
}

func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}

// visible loads a document the caller may see; otherwise it answers 404 (not 403, which
// would confirm the document exists).
func (s *Server) visible(w http.ResponseWriter, r *http.Request) (store.Document, bool) {
	d, err := s.d.Store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !principal(r).CanSee(d.Tags)) {
		writeError(w, http.StatusNotFound, "document not found")
		return d, false
	}
	if err != nil {
		s.internal(w, err)
		return d, false
	}
	return d, true
}

// internal answers an error the caller did not cause: 507 when the data volume is full or
// read-only (a state the operator can fix, reported as the storage dependency), else 500. The
// message names no path; the log has the details.
func (s *Server) internal(w http.ResponseWriter, err error) {
	if store.IsNoSpace(err) || store.IsReadOnly(err) || store.IsIOError(err) || errors.Is(err, errLowSpace) {
		s.storeFailed(w, err)
		return
	}
	s.log.Error("Request failed", "error", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := store.Query{Status: store.Status(q.Get("status")), Tag: q.Get("tag"), Name: q.Get("name"), AnyTag: principal(r).SearchTags()}
	if query.Status != "" && !slices.Contains(store.Statuses, query.Status) {
		writeError(w, http.StatusBadRequest, "status must be one of %v", store.Statuses)
		return
	}
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"limit", &query.Limit, 1000}, {"offset", &query.Offset, 1 << 30}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > p.max {
				writeError(w, http.StatusBadRequest, "%s must be an integer between 0 and %d", p.name, p.max)
				return
			}
			*p.dst = n
		}
	}
	if len(query.Name) > 200 || len(query.Tag) > 64 {
		writeError(w, http.StatusBadRequest, "name or tag filter too long")
		return
	}
	docs, total, err := s.d.Store.List(r.Context(), query)
	if err != nil {
		s.internal(w, err)
		return
	}
	out := make([]Document, len(docs))
	for i, d := range docs {
		out[i] = view(d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"documents": out, "total": total})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	if d, ok := s.visible(w, r); ok {
		writeJSON(w, http.StatusOK, view(d))
	}
}

func (s *Server) modifiable(w http.ResponseWriter, r *http.Request) (store.Document, bool) {
	d, ok := s.visible(w, r)
	if ok && !principal(r).CanModify(d.Owner, d.Tags) {
		writeError(w, http.StatusForbidden, "only an admin or the key that uploaded the document may change it")
		return d, false
	}
	return d, ok
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	d, ok := s.modifiable(w, r)
	if !ok {
		return
	}
	switch err := s.d.Pipeline.Delete(r.Context(), d.ID); {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "document not found")
	default:
		// Marked deleting but not finished (the vector store down, the volume full or
		// read-only): maintenance finishes it. Not even marked: nothing changed, say why.
		if cur, gerr := s.d.Store.Get(r.Context(), d.ID); gerr != nil || cur.Status != store.Deleting {
			s.internal(w, err)
			return
		}
		s.log.Warn("Delete not finished, will retry", "document", d.ID, "error", err)
		writeJSON(w, http.StatusAccepted, map[string]any{"id": d.ID, "status": store.Deleting, "error": deleteSentence(err)})
	}
}

func (s *Server) reprocess(w http.ResponseWriter, r *http.Request) {
	d, ok := s.modifiable(w, r)
	if !ok {
		return
	}
	switch d, err := s.d.Pipeline.Reprocess(r.Context(), d.ID); {
	case err == nil:
		writeJSON(w, http.StatusAccepted, view(d))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "document not found")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "document is being deleted")
	case errors.Is(err, store.ErrQueueFull):
		s.busy(w, "ingest queue is full (%d documents); retry later", s.cfg.MaxQueued)
	default:
		s.internal(w, err)
	}
}

func (s *Server) setTags(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tags []string `json:"tags"`
	}
	if !decodeJSON(w, r, s.cfg.MaxJSONBytes, &body) {
		return
	}
	if body.Tags == nil {
		writeError(w, http.StatusBadRequest, `body must be {"tags": [...]}`)
		return
	}
	tags, err := parseTags(body.Tags)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	p := principal(r)
	if !p.IsAdmin() && len(tags) == 0 {
		writeError(w, http.StatusBadRequest, "a user key must leave at least one of its tags on a document")
		return
	}
	if tags, err = p.AllowedTags(tags); err != nil {
		writeError(w, http.StatusForbidden, "%v", err)
		return
	}
	d, ok := s.modifiable(w, r)
	if !ok {
		return
	}
	switch d, err := s.d.Pipeline.SetTags(r.Context(), d.ID, tags); {
	case err == nil:
		writeJSON(w, http.StatusOK, view(d))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "document not found")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "document is being deleted")
	default:
		s.internal(w, err)
	}
}

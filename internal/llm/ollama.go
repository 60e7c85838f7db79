package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// The wire types are Ollama's own (github.com/ollama/ollama/api, pinned to the version we
// build and test against), so field names and JSON shapes cannot drift from the server. The
// transport is plain net/http rather than api.Client because the lanes need what api.Client
// hides: the status code and Retry-After of a refusal (503 vs 4xx decide retry or not), whether
// any token was already streamed (only then is a failed chat not retryable), a stall timeout
// between stream lines, and one caller-owned, pooled *http.Client.

// Options configure the Ollama client. Zero values take the defaults noted.
type Options struct {
	// BaseURL of Ollama, e.g. http://ollama:11434. Required.
	BaseURL string
	// NumParallel is OLLAMA_NUM_PARALLEL, the chat slots, when the server knows it: at most this
	// many chat calls are then in flight (one pool for every chat/summary/tag model: on one GPU
	// their slots share the same compute), and interactive calls wait here, ahead of background
	// ones, for a free slot. 0 means unknown (the server config does not carry it; the operator
	// validates BackgroundMax < NumParallel instead): interactive calls are then not capped here
	// and queue inside Ollama, where they can only wait for each other, because background work
	// never holds more than BackgroundMax slots.
	NumParallel int
	// BackgroundMax is warmingMaxConcurrentQueries: the most chat slots background work
	// (summaries, tags, warming) may hold. When NumParallel is known it is clamped to
	// NumParallel-1, so the last slot stays free for interactive calls. 0 turns background chat
	// off: such calls fail at once with ErrNoBackgroundSlot.
	BackgroundMax int
	// EmbedConcurrency bounds /api/embed calls in flight. Ollama runs embedding models with one
	// slot, so more than "one running, one ready" only queues inside Ollama. Default 2.
	EmbedConcurrency int
	// EmbedBackgroundMax is the most embed calls background (ingest) work may have in flight.
	// Default max(1, EmbedConcurrency-1): with the default 2, ingest keeps Ollama's one slot busy
	// while a query embedding is sent at once and runs next, instead of waiting behind a queued
	// ingest batch. Set it to EmbedConcurrency to pipeline ingest fully.
	EmbedBackgroundMax int
	// EmbedBatchSize is the most texts per /api/embed call. Default 32.
	EmbedBatchSize int
	// BackgroundCallTarget sizes background /api/embed batches by time rather than count: from
	// the measured time per text, a batch holds what Ollama embeds in about this long (at most
	// EmbedBatchSize). A question's embedding waits behind at most one running batch in
	// Ollama's single embedding slot, so this bounds that wait on any hardware: a fast GPU keeps
	// full batches, a CPU gets small ones. Default 250ms; negative: always EmbedBatchSize.
	BackgroundCallTarget time.Duration
	// MaxYield bounds HoldBackground (a user waiting for a first token): a hold lapses after
	// it, and while holds overlap without a break one background call is let through every
	// MaxYield (every 5 MaxYields for background chat while answers may cut it: preempt.go),
	// so a steady stream of questions slows background work without stopping it.
	// Default 2s; negative turns holds off.
	MaxYield time.Duration
	// QuestionWindow: while questions are being asked (one waits for its first token, or the
	// last did less than this long ago), at most one background chat call (summary, tag) runs
	// on this server, whatever BackgroundMax allows. A cut call's batches already handed to the
	// model still run to their end inside Ollama, so every background call in flight adds to
	// what the next question waits for; with no question in sight, background work uses every
	// slot BackgroundMax gives it. Default 30s; negative: off (docs/rag-server.md has the
	// measurement).
	QuestionWindow time.Duration
	// EmbedDimension, when set, is the vector length every embedding must have (the collection's
	// size); 0 checks only that all vectors of a call agree.
	EmbedDimension int
	// KeepAlive is sent as keep_alive on every call: 0 leaves Ollama's default, negative keeps the
	// model loaded forever.
	KeepAlive time.Duration
	// HTTPClient is the one client every call uses (keep-alive pooled). Its Timeout must be 0:
	// chat streams; deadlines come from contexts. Default: a client whose transport keeps enough
	// idle connections per host for every slot (net/http's default of 2 would churn connections).
	HTTPClient *http.Client
	// CallTimeout bounds each /api/embed attempt, and for chat the wait for the first and each
	// following stream line (a stall timeout: a long answer that keeps streaming is not cut).
	// Time spent queued in a lane is not counted; the caller's ctx bounds the whole call.
	// Default 2m (a cold model load happens inside the first call).
	CallTimeout time.Duration
	// PingTimeout bounds Ping. Default 2s.
	PingTimeout time.Duration
	// MaxQueueInteractive and MaxQueueBackground bound each pool's wait queue per lane; a new call
	// finding it full fails with ErrBusy. Defaults 32 and 64.
	MaxQueueInteractive int
	MaxQueueBackground  int
	// Retry is the retry policy for embed batches and for chat calls that streamed nothing yet.
	Retry RetryPolicy
	// Metrics registers the client's series (see metrics.go); nil exports none.
	Metrics prometheus.Registerer

	// giveUp, set by a Pool, ends a call at once on an error the pool answers better by trying
	// another server (the server refused the connection, or is busy) than by backing off here.
	giveUp func(error) bool
	// stepTokens replaces stepTokens (preempt.go) in tests.
	stepTokens int
}

// FromConfig maps the server's config file onto Options (NumParallel, Metrics and HTTPClient are
// left to the caller: the file does not carry Ollama's slot count).
func FromConfig(c serverconfig.Config) (Options, error) {
	ka, err := ParseKeepAlive(c.Ollama.KeepAlive)
	if err != nil {
		return Options{}, fmt.Errorf("ollama.keepAlive: %w", err)
	}
	return Options{
		BaseURL:          c.Ollama.URL,
		BackgroundMax:    c.Limits.WarmingMaxConcurrentQueries,
		EmbedConcurrency: c.Limits.EmbedConcurrency,
		EmbedBatchSize:   c.Limits.EmbedBatchSize,
		EmbedDimension:   c.Qdrant.Collection.VectorSize,
		KeepAlive:        ka,
	}, nil
}

// ParseKeepAlive reads a keep-alive the way Ollama does: "" (Ollama's default, returned as 0), a
// Go duration ("30m", "-1m"), or plain seconds ("300", "-1"); any negative value means forever.
func ParseKeepAlive(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 {
			return -1, nil
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("keep-alive %q: want a duration like 30m or seconds like -1", s)
	}
	if d < 0 {
		return -1, nil
	}
	return d, nil
}

func (o Options) withDefaults() Options {
	o.NumParallel = max(o.NumParallel, 0)
	o.BackgroundMax = max(o.BackgroundMax, 0)
	if o.NumParallel > 0 {
		o.BackgroundMax = min(o.BackgroundMax, o.NumParallel-1)
	}
	if o.EmbedConcurrency < 1 {
		o.EmbedConcurrency = 2
	}
	if o.EmbedBackgroundMax < 1 {
		o.EmbedBackgroundMax = max(1, o.EmbedConcurrency-1)
	}
	o.EmbedBackgroundMax = min(o.EmbedBackgroundMax, o.EmbedConcurrency)
	if o.EmbedBatchSize < 1 {
		o.EmbedBatchSize = 32
	}
	if o.BackgroundCallTarget == 0 {
		o.BackgroundCallTarget = 250 * time.Millisecond
	}
	if o.MaxYield == 0 {
		o.MaxYield = 2 * time.Second
	}
	if o.QuestionWindow == 0 {
		o.QuestionWindow = 30 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Minute
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 2 * time.Second
	}
	if o.MaxQueueInteractive < 1 {
		o.MaxQueueInteractive = 32
	}
	if o.MaxQueueBackground < 1 {
		o.MaxQueueBackground = 64
	}
	o.Retry = o.Retry.withDefaults()
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        100,
			MaxIdleConnsPerHost: max(o.NumParallel, o.BackgroundMax+4) + o.EmbedConcurrency,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return o
}

// Ollama is the llm.Client for an Ollama server, with priority lanes in front of it.
type Ollama struct {
	opts    Options
	base    *url.URL
	http    *http.Client
	chat    *gate
	embed   *gate
	pace    embedPace
	metrics *metrics
	preempt preemptor // preempt.go
}

// embedPace is a moving estimate of how long Ollama takes per embedded text in background
// batches: its own time for the batch (total_duration less load_duration, so a model load does
// not shrink every later batch), or the call's wall time when Ollama does not report it.
type embedPace struct {
	mu      sync.Mutex
	perText time.Duration // 0 until the first batch returned
}

func (p *embedPace) observe(texts int, took time.Duration) {
	if texts < 1 || took <= 0 {
		return
	}
	per := took / time.Duration(texts)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perText == 0 {
		p.perText = per
		return
	}
	// One stalled batch moves the estimate at most 4x, so it recovers in a few calls.
	per = min(per, 4*p.perText)
	p.perText = (3*p.perText + per) / 4
}

// probeBatch is the background batch size while nothing is measured yet: a first batch of
// EmbedBatchSize took 2.7 s on a 2-core CPU, and a question's embedding waited behind two of
// them (3.8 s) at the start of every bulk ingest (docs/benchmarks/bench.md).
const probeBatch = 4

// batch is how many texts fit in target, between 1 and limit (probeBatch while nothing is
// known).
func (p *embedPace) batch(target time.Duration, limit int) int {
	p.mu.Lock()
	per := p.perText
	p.mu.Unlock()
	if target <= 0 {
		return limit
	}
	if per <= 0 {
		return min(limit, probeBatch)
	}
	return max(1, min(limit, int(target/per)))
}

var _ Client = (*Ollama)(nil)

// New builds the client. It does not contact Ollama (Ping does). A BaseURL that does not parse
// is reported by the first call, so that a server can still start and report not-ready.
func New(cfg Options) *Ollama {
	o := cfg.withDefaults()
	m := newMetrics(o.Metrics)
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		base = nil
	}
	chat := newGate("chat", chatCapacity(o), o.BackgroundMax, o.MaxQueueInteractive, o.MaxQueueBackground, o.MaxYield, m.chat)
	chat.askedWindow = max(0, o.QuestionWindow)
	return &Ollama{
		opts:    o,
		base:    base,
		http:    o.HTTPClient,
		metrics: m,
		chat:    chat,
		embed:   newGate("embed", o.EmbedConcurrency, o.EmbedBackgroundMax, o.MaxQueueInteractive, o.MaxQueueBackground, o.MaxYield, m.embed),
	}
}

// HoldBackground pauses the admission of background calls, in both pools, until release is
// called (safe to call more than once) or MaxYield has passed; under overlapping holds one
// background call still goes through every MaxYield. The answer path holds from the question's embedding to the first answer token:
// Ollama's models share one GPU (or the CPU), so an ingest batch or a summary started in that
// window would lengthen the prefill the user is waiting for. Running calls are not interrupted,
// except background chat calls when SetPreemption is on (preempt.go).
func (o *Ollama) HoldBackground() (release func()) {
	if o.opts.MaxYield < 0 {
		return func() {}
	}
	o.metrics.holds.Inc()
	relChat, relEmbed := o.chat.hold(), o.embed.hold()
	o.preempt.cutAll() // preempt.go: a running summary gives way too
	var once sync.Once
	return func() {
		once.Do(func() {
			relEmbed()
			relChat()
			o.metrics.holds.Dec()
		})
	}
}

// chatCapacity is the chat pool's size: NumParallel, or no cap when it is unknown.
func chatCapacity(o Options) int {
	if o.NumParallel > 0 {
		return o.NumParallel
	}
	return math.MaxInt32
}

func (o *Ollama) endpoint(path string) (string, error) {
	if o.base == nil {
		return "", fmt.Errorf("ollama: base URL %q is not an absolute URL", o.opts.BaseURL)
	}
	return o.base.JoinPath(path).String(), nil
}

func (o *Ollama) keepAlive() *api.Duration {
	if o.opts.KeepAlive == 0 {
		return nil
	}
	return &api.Duration{Duration: o.opts.KeepAlive}
}

// post sends one JSON request and returns the response when it is 200; any other status is
// read into a *StatusError.
func (o *Ollama) post(ctx context.Context, op, path string, body []byte) (*http.Response, error) {
	u, err := o.endpoint(path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer drainClose(resp.Body)
		return nil, readStatusError(op, resp)
	}
	return resp, nil
}

// drainClose reads what is left of a body (a trailing newline, the chunked terminator) before
// closing it: net/http returns a connection to the keep-alive pool only when its body was read
// to EOF, otherwise every call would dial anew.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

func readStatusError(op string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(b))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return &StatusError{Op: op, StatusCode: resp.StatusCode, Message: msg, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
}

func (o *Ollama) observe(op string, start time.Time) {
	o.metrics.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// Ping asks /api/version with the short PingTimeout and outside the lanes: readiness must not
// queue behind ingest.
func (o *Ollama) Ping(ctx context.Context) error {
	_, err := o.Version(ctx)
	return err
}

// Version returns Ollama's version string (GET /api/version, bounded by PingTimeout).
func (o *Ollama) Version(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.opts.PingTimeout)
	defer cancel()
	u, err := o.endpoint("api/version")
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	defer o.observe("version", time.Now())
	resp, err := o.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("ollama version: %w", err)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", readStatusError("version", resp)
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&v); err != nil {
		return "", fmt.Errorf("ollama version: %w", err)
	}
	return v.Version, nil
}

// Embed embeds texts through /api/embed in batches of EmbedBatchSize, at most as many batches in
// flight as the lane may hold, each batch acquiring the embed pool separately (so a query
// embedding slips in between the batches of a large ingest). A failed batch is retried with
// backoff; when the failure could be caused by its content (5xx, timeout, cut connection) it is
// split in halves first, isolating a bad input. Items embedded already are never sent again.
// Results are in input order and all of one length.
func (o *Ollama) Embed(ctx context.Context, lane Lane, model string, texts []string) (_ [][]float32, err error) {
	if len(texts) == 0 {
		return [][]float32{}, nil
	}
	if model == "" {
		return nil, errors.New("ollama embed: no model named")
	}
	call := o.metrics.startCall(ctx, "embed", lane, model)
	defer func() { call.end(ChatResponse{}, err) }()
	out := make([][]float32, len(texts))
	e := &embedCall{o: o, lane: lane, model: model, texts: texts, out: out, dim: o.opts.EmbedDimension}

	// A background batch is sized when it is taken, from the pace measured so far: the first
	// batches of a long call already follow what the probe batch measured.
	size := func() int {
		if lane == Background {
			return o.pace.batch(o.backgroundCallTarget(), o.opts.EmbedBatchSize) // throttle.go: scaled by the background level
		}
		return o.opts.EmbedBatchSize
	}
	bs := size()
	workers := min((len(texts)+bs-1)/bs, o.embed.laneMax[lane])
	var cursorMu sync.Mutex
	cursor := 0
	take := func() (lo, hi int, ok bool) {
		cursorMu.Lock()
		defer cursorMu.Unlock()
		if cursor >= len(texts) {
			return 0, 0, false
		}
		lo = cursor
		cursor = min(cursor+size(), len(texts))
		return lo, cursor, true
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range workers {
		wg.Go(func() {
			for {
				lo, hi, ok := take()
				if !ok || ctx.Err() != nil {
					return
				}
				if err := e.run(ctx, lo, hi, 1); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

type embedCall struct {
	o     *Ollama
	lane  Lane
	model string
	texts []string
	out   [][]float32

	admitted atomic.Bool // the call got a slot once: later acquisitions are not refused
	mu       sync.Mutex
	dim      int // vector length all results must share; 0 until the first answer
}

// run embeds texts[lo:hi] (attempt is 1-based), retrying and splitting as the failure requires.
func (e *embedCall) run(ctx context.Context, lo, hi, attempt int) error {
	o := e.o
	for {
		release, err := o.embed.acquire(ctx, e.lane, !e.admitted.Load())
		if err != nil {
			return fmt.Errorf("ollama embed: %w", err)
		}
		e.admitted.Store(true)
		start := time.Now()
		vecs, work, err := e.once(ctx, lo, hi)
		release() // never hold a slot through a backoff
		if err == nil {
			if e.lane == Background {
				if work <= 0 {
					work = time.Since(start)
				}
				o.pace.observe(hi-lo, work)
			}
			return e.store(lo, hi, vecs)
		}
		kind, retryAfter := classify(ctx, err)
		if kind == fatal {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("ollama embed texts %d..%d: %w", lo, hi-1, err)
		}
		if o.opts.giveUp != nil && o.opts.giveUp(err) {
			return fmt.Errorf("ollama embed texts %d..%d: %w", lo, hi-1, err)
		}
		if attempt >= o.opts.Retry.MaxAttempts {
			return busyIfOverloaded(fmt.Errorf("ollama embed texts %d..%d: giving up after %d attempts: %w", lo, hi-1, attempt, err))
		}
		o.metrics.retries.WithLabelValues("embed").Inc()
		if err := sleepCtx(ctx, o.opts.Retry.backoff(attempt, retryAfter)); err != nil {
			return err
		}
		attempt++
		if kind == retrySplit && hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if err := e.run(ctx, lo, mid, attempt); err != nil {
				return err
			}
			return e.run(ctx, mid, hi, attempt)
		}
	}
}

// once is one /api/embed attempt, bounded by CallTimeout. work is Ollama's own time for it
// without a model load (0 when not reported).
func (e *embedCall) once(ctx context.Context, lo, hi int) (vecs [][]float32, work time.Duration, err error) {
	o := e.o
	truncate := true // a chunk over the model's context is cut, not refused
	body, err := json.Marshal(api.EmbedRequest{
		Model:     e.model,
		Input:     e.texts[lo:hi],
		KeepAlive: o.keepAlive(),
		Truncate:  &truncate,
	})
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.opts.CallTimeout)
	defer cancel()
	defer o.observe("embed", time.Now())
	resp, err := o.post(ctx, "embed", "api/embed", body)
	if err != nil {
		return nil, 0, err
	}
	defer drainClose(resp.Body)
	var r api.EmbedResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || ctx.Err() != nil {
			return nil, 0, fmt.Errorf("reading answer: %w", errors.Join(err, ctx.Err()))
		}
		return nil, 0, fmt.Errorf("decoding answer: %w", err)
	}
	if len(r.Embeddings) != hi-lo {
		return nil, 0, fmt.Errorf("ollama returned %d embeddings for %d inputs", len(r.Embeddings), hi-lo)
	}
	return r.Embeddings, r.TotalDuration - r.LoadDuration, nil
}

func (e *embedCall) store(lo, hi int, vecs [][]float32) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, v := range vecs {
		if len(v) == 0 {
			return fmt.Errorf("ollama embed: empty embedding for text %d", lo+i)
		}
		if e.dim == 0 {
			e.dim = len(v)
		}
		if len(v) != e.dim {
			return fmt.Errorf("ollama embed: text %d has %d dimensions, want %d", lo+i, len(v), e.dim)
		}
	}
	copy(e.out[lo:hi], vecs)
	e.o.metrics.embedItems.WithLabelValues(e.lane.String()).Add(float64(hi - lo))
	return nil
}

// errStalled is the cause when a chat stream sent nothing for CallTimeout.
var errStalled = errors.New("ollama stream stalled")

// Chat streams one /api/chat answer on the lane, holding a chat slot for the whole stream. A
// failure before any content reached OnToken is retried like an embed batch; after that it is
// returned (the caller has shown part of an answer). Cancelling ctx aborts the HTTP request,
// which makes Ollama stop generating and frees its slot.
func (o *Ollama) Chat(ctx context.Context, lane Lane, req ChatRequest) (res ChatResponse, err error) {
	if req.Model == "" {
		return ChatResponse{}, errors.New("ollama chat: no model named")
	}
	if len(req.Messages) == 0 {
		return ChatResponse{}, errors.New("ollama chat: no messages")
	}
	call := o.metrics.startCall(ctx, "chat", lane, req.Model)
	defer func() { call.end(res, err) }()
	req.OnToken = call.onToken(req.OnToken)
	if lane == Background && req.OnToken == nil && o.preempt.enabled() {
		return o.chatPreemptible(ctx, req) // preempt.go
	}
	body, err := o.chatBody(req)
	if err != nil {
		return ChatResponse{}, err
	}
	for attempt := 1; ; attempt++ {
		release, err := o.chat.acquire(ctx, lane, attempt == 1)
		if err != nil {
			return ChatResponse{}, fmt.Errorf("ollama chat: %w", err)
		}
		resp, streamed, err := o.chatOnce(ctx, body, req.OnToken)
		release()
		if err == nil {
			return resp, nil
		}
		if resp, err = o.afterFailedChat(ctx, resp, err, streamed, attempt); err != nil {
			return resp, err
		}
	}
}

// afterFailedChat decides what follows a chat attempt that failed with err: an error to return
// (fatal, streamed already, one a pool answers by moving on, or the last attempt), or nil after
// the retry backoff, when the caller tries again.
func (o *Ollama) afterFailedChat(ctx context.Context, resp ChatResponse, err error, streamed bool, attempt int) (ChatResponse, error) {
	kind, retryAfter := classify(ctx, err)
	if streamed || kind == fatal {
		if ctx.Err() != nil {
			return resp, ctx.Err()
		}
		return resp, fmt.Errorf("ollama chat: %w", err)
	}
	if o.opts.giveUp != nil && o.opts.giveUp(err) {
		return resp, fmt.Errorf("ollama chat: %w", err)
	}
	if attempt >= o.opts.Retry.MaxAttempts {
		return resp, busyIfOverloaded(fmt.Errorf("ollama chat: giving up after %d attempts: %w", attempt, err))
	}
	o.metrics.retries.WithLabelValues("chat").Inc()
	if err := sleepCtx(ctx, o.opts.Retry.backoff(attempt, retryAfter)); err != nil {
		return ChatResponse{}, err
	}
	return ChatResponse{}, nil
}

func (o *Ollama) chatBody(req ChatRequest) ([]byte, error) {
	stream := true
	msgs := make([]api.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = api.Message{Role: m.Role, Content: m.Content}
	}
	opts := make(map[string]any, len(req.Options)+1)
	for k, v := range req.Options {
		opts[k] = v
	}
	if req.MaxTokens > 0 {
		opts["num_predict"] = req.MaxTokens
	}
	r := api.ChatRequest{
		Model:     req.Model,
		Messages:  msgs,
		Stream:    &stream,
		KeepAlive: o.keepAlive(),
		Options:   opts,
	}
	if req.Think != nil {
		r.Think = &api.ThinkValue{Value: *req.Think}
	}
	return json.Marshal(r)
}

// chatOnce is one streamed /api/chat attempt. streamed reports whether any content was handed
// to onToken (then the attempt must not be repeated).
func (o *Ollama) chatOnce(parent context.Context, body []byte, onToken func(string) error) (res ChatResponse, streamed bool, err error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	// The stall timer cancels the request when Ollama sends nothing for CallTimeout; every line
	// re-arms it. Cancelling the request context closes the connection, which is how Ollama
	// learns to stop generating.
	stall := time.AfterFunc(o.opts.CallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	defer o.observe("chat", time.Now())

	resp, err := o.post(ctx, "chat", "api/chat", body)
	if err != nil {
		return res, false, withCause(ctx, err)
	}
	defer func() {
		if err == nil {
			drainClose(resp.Body) // done line read: only the stream's end is left
			return
		}
		// Abandoned mid-stream (OnToken error, stall, bad line): close the connection now rather
		// than read on while Ollama generates; the closed connection stops the generation.
		cancel(err)
		_ = resp.Body.Close()
	}()

	var content, thinking strings.Builder
	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, rerr := rd.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			stall.Reset(o.opts.CallTimeout)
			var chunk struct {
				api.ChatResponse
				Error string `json:"error"`
			}
			if err := json.Unmarshal(line, &chunk); err != nil {
				return res, streamed, fmt.Errorf("decoding stream: %w", err)
			}
			if chunk.Error != "" {
				// Ollama reports failures after the 200 header as an error line.
				return res, streamed, &StatusError{Op: "chat", StatusCode: http.StatusInternalServerError, Message: chunk.Error}
			}
			thinking.WriteString(chunk.Message.Thinking)
			if c := chunk.Message.Content; c != "" {
				content.WriteString(c)
				res.Content = content.String()
				if onToken != nil {
					streamed = true
					if err := onToken(c); err != nil {
						return res, streamed, err
					}
				}
			}
			if chunk.Done {
				res.Content = content.String()
				res.Thinking = thinking.String()
				res.DoneReason = chunk.DoneReason
				res.PromptTokens = chunk.PromptEvalCount
				res.GeneratedTokens = chunk.EvalCount
				res.EvalDuration = chunk.EvalDuration
				res.LoadDuration = chunk.LoadDuration
				res.PromptEvalDuration = chunk.PromptEvalDuration
				return res, streamed, nil
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF // the stream ended without a done line
			}
			res.Content = content.String()
			res.Thinking = thinking.String()
			return res, streamed, fmt.Errorf("reading stream: %w", withCause(ctx, rerr))
		}
	}
}

// withCause adds the context's cause (errStalled) to a transport error, so that classify sees a
// stall as a timeout rather than as the caller's cancellation.
func withCause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(err, c) {
		return errors.Join(err, c)
	}
	return err
}

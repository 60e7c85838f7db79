package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Pool is the Client for one or more Ollama servers: one per GPU node, whose per-pod addresses
// the operator renders into ollama.urls. With one server it is that server's *Ollama, unchanged.
//
// Each server keeps its own lanes (an *Ollama with the pool's Options), so the background lane
// never holds the last chat slot of any server, and a hold (a question waiting for its first
// token) pauses background admissions on every server, since the question's call may go to any.
//
// Balancing: each chat call, and each batch of an embedding call, goes to the server in rotation
// with the fewest outstanding requests (in flight at Ollama or waiting in that server's lanes)
// for the same model; ties go to fewer for that model on the call's lane, then fewer in all,
// then in turn (per model). Per model because Ollama gives each loaded model its own slots: a
// server busy answering questions still has its embedding slot free.
//
// Failure: a server that refuses or cuts the connection, times out, or answers 5xx (other than
// 503 "busy" and 501) is taken out of rotation and the call moves to another server at once; a
// batch moves with only its items not embedded yet. The server returns when it answers
// /api/version again (probed from 250 ms, backing off to 5 s) and, after repeated failures, a
// hold-off has passed (none the first time, then 1 s doubling to 30 s; a successful call resets
// it); the warm-up models are loaded on it before it takes calls. A busy server (503/429, or its
// lane queue full) is skipped for that call without leaving the rotation; a server that lacks the
// model (404) is avoided for that model for 30 s. When no server is in rotation, calls still try
// each one in turn, so a probe that lags cannot refuse work that would succeed.
type Pool struct {
	members   []*member
	retry     RetryPolicy
	warm      []WarmModel
	warmFor   time.Duration
	log       *slog.Logger
	failovers *prometheus.CounterVec // op; nil with one server

	ctx    context.Context // probers; ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	rr map[string]int // model → where its next tie-break starts (per model, so that calls of
	// different models taking turns do not pin each model to one server)
}

// PoolOptions configure a Pool.
type PoolOptions struct {
	// Options apply to every server (each gets its own lanes and slots); BaseURL is the server
	// when URLs is empty.
	Options
	// URLs are the servers, e.g. http://rag-ollama-0.rag-ollama-headless.ns.svc:11434.
	URLs []string
	// Warm are loaded on a server before it returns to the rotation, and on every server by
	// WarmUp, so the first question sent to a restarted server does not wait for a model load.
	Warm []WarmModel
	// WarmTimeout bounds one model's load. Default 10m (a large model from disk).
	WarmTimeout time.Duration
	// Logger receives a server leaving and rejoining the rotation; nil: discarded.
	Logger *slog.Logger
}

// WarmModel is a model a warm-up loads: with an empty embed for embedding models, an empty
// generate for the others (both load without computing anything).
type WarmModel struct {
	Name      string
	Embedding bool
}

// missingFor is how long a server that answered 404 for a model is passed over for it (the
// operator's model Jobs create variants on a new pod within about that).
const missingFor = 30 * time.Second

type member struct {
	name string // its index in URLs: metrics and the health view name servers by it, not by address
	url  string
	o    *Ollama

	// Guarded by Pool.mu.
	up        bool
	failures  int       // consecutive times out of rotation; reset by a successful call
	notBefore time.Time // no return to the rotation before
	lastErr   string
	changedAt time.Time // entered or left the rotation
	probedAt  time.Time
	probeLat  time.Duration
	probing   bool
	out       map[string]*[2]int // model → outstanding calls per lane
	total     int
	missing   map[string]time.Time // model → avoided until
}

var _ Client = (*Pool)(nil)
var _ BackgroundHolder = (*Pool)(nil)

// NewPool builds the clients; like New, it contacts nobody.
func NewPool(po PoolOptions) *Pool {
	urls := po.URLs
	if len(urls) == 0 {
		urls = []string{po.BaseURL}
	}
	p := &Pool{warm: po.Warm, warmFor: po.WarmTimeout, log: po.Logger, rr: map[string]int{}}
	if p.warmFor <= 0 {
		p.warmFor = 10 * time.Minute
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	multi := len(urls) > 1
	for i, u := range urls {
		o := po.Options
		o.BaseURL = u
		if multi {
			// Every server's series carry server="<index>"; one server keeps the plain series.
			if o.Metrics != nil {
				o.Metrics = prometheus.WrapRegistererWith(prometheus.Labels{"server": strconv.Itoa(i)}, o.Metrics)
			}
			// A refusal or "busy" is better answered by another server than by a backoff here.
			o.giveUp = func(err error) bool {
				kind, _ := classify(context.Background(), err)
				return kind == retryWhole
			}
		}
		c := New(o)
		p.retry = c.opts.Retry
		p.members = append(p.members, &member{name: strconv.Itoa(i), url: u, o: c, up: true,
			out: map[string]*[2]int{}, missing: map[string]time.Time{}})
	}
	if multi {
		p.failovers = register(po.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rag_llm_failovers_total",
			Help: "Calls (chat) or embedding batches moved to another Ollama server after one failed, was busy or lacked the model.",
		}, []string{"op"}))
	}
	return p
}

// Size is the number of servers.
func (p *Pool) Size() int { return len(p.members) }

// Close stops the probes of servers out of rotation.
func (p *Pool) Close() {
	p.cancel()
	p.wg.Wait()
}

// HoldBackground holds background admissions on every server (see Ollama.HoldBackground).
func (p *Pool) HoldBackground() (release func()) {
	if len(p.members) == 1 {
		return p.members[0].o.HoldBackground()
	}
	rel := make([]func(), len(p.members))
	for i, m := range p.members {
		rel[i] = m.o.HoldBackground()
	}
	return func() {
		for _, r := range rel {
			r()
		}
	}
}

// --- choosing a server --------------------------------------------------------------------------

// acquire picks the server for one call of model on lane, skipping those in tried, and counts
// the call as outstanding there until release. Preference: in rotation and not known to lack the
// model; then out of rotation; then lacking the model. nil when every server was tried.
func (p *Pool) acquire(model string, lane Lane, tried map[*member]bool) *member {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	n := len(p.members)
	start := p.rr[model]
	p.rr[model] = (start + 1) % n
	var best *member
	bestTier := 0
	for k := range n {
		m := p.members[(start+k)%n]
		if tried[m] {
			continue
		}
		tier := 0
		if !m.up {
			tier++
		}
		if until, ok := m.missing[model]; ok && now.Before(until) {
			tier += 2
		}
		if best == nil || tier < bestTier || (tier == bestTier && m.fewer(best, model, lane)) {
			best, bestTier = m, tier
		}
	}
	if best != nil {
		best.count(model, lane, 1)
	}
	return best
}

// fewer: m has fewer outstanding calls than o for model, then for model on lane, then in all.
func (m *member) fewer(o *member, model string, lane Lane) bool {
	a, b := m.out[model], o.out[model]
	var ma, mb [2]int
	if a != nil {
		ma = *a
	}
	if b != nil {
		mb = *b
	}
	if ma[0]+ma[1] != mb[0]+mb[1] {
		return ma[0]+ma[1] < mb[0]+mb[1]
	}
	if ma[lane] != mb[lane] {
		return ma[lane] < mb[lane]
	}
	return m.total < o.total
}

func (m *member) count(model string, lane Lane, d int) {
	c := m.out[model]
	if c == nil {
		c = &[2]int{}
		m.out[model] = c
	}
	c[lane] += d
	m.total += d
}

func (p *Pool) release(m *member, model string, lane Lane, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.count(model, lane, -1)
	if err == nil {
		m.failures = 0
	}
}

// judge decides what a failed call on m means. move: try another server; again: the failure
// was of the kind a later round over all servers may outlive (refused, busy), as opposed to one
// the server's own retries already outlasted (5xx, timeouts). Server failures take m out of
// rotation.
func (p *Pool) judge(ctx context.Context, m *member, model string, err error) (move, again bool) {
	if ctx.Err() != nil || errors.Is(err, ErrNoBackgroundSlot) {
		return false, false
	}
	if errors.Is(err, ErrBusy) {
		return true, true
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch {
		case se.StatusCode == http.StatusServiceUnavailable || se.StatusCode == http.StatusTooManyRequests:
			return true, true
		case se.StatusCode == http.StatusNotFound && strings.Contains(strings.ToLower(se.Message), "not found"):
			p.markMissing(m, model)
			return true, false
		}
	}
	switch kind, _ := classify(ctx, err); kind {
	case retryWhole:
		p.markDown(m, err)
		return true, true
	case retrySplit:
		p.markDown(m, err)
		return true, false
	}
	return false, false
}

func (p *Pool) markMissing(m *member, model string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.missing[model] = time.Now().Add(missingFor)
}

// markDown takes m out of rotation (once per outage however many calls fail together) and
// starts its probe.
func (p *Pool) markDown(m *member, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.lastErr = err.Error()
	if !m.up {
		return
	}
	now := time.Now()
	m.up = false
	m.failures++
	m.changedAt = now
	m.notBefore = now
	if m.failures > 1 {
		m.notBefore = now.Add(min(time.Second<<min(m.failures-2, 5), 30*time.Second))
	}
	p.log.Warn("Ollama server out of rotation", "server", m.name, "url", m.url, "error", err, "returnsAfter", m.notBefore.Sub(now))
	if !m.probing && p.ctx.Err() == nil {
		m.probing = true
		p.wg.Go(func() { p.probe(m) })
	}
}

// probe runs while m is out of rotation: when it answers /api/version and its hold-off has
// passed, the warm-up models are loaded on it and it rejoins.
func (p *Pool) probe(m *member) {
	defer func() {
		p.mu.Lock()
		m.probing = false
		p.mu.Unlock()
	}()
	delay := 250 * time.Millisecond
	for {
		p.mu.Lock()
		wait := max(delay, time.Until(m.notBefore))
		p.mu.Unlock()
		if sleepCtx(p.ctx, wait) != nil {
			return
		}
		delay = min(2*delay, 5*time.Second)
		if err := p.ping(p.ctx, m); err != nil {
			continue
		}
		p.warmServer(p.ctx, m)
		if p.ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		m.up, m.lastErr, m.changedAt = true, "", time.Now()
		p.mu.Unlock()
		p.log.Info("Ollama server back in rotation", "server", m.name, "url", m.url)
		return
	}
}

// ping asks m's /api/version and records the outcome.
func (p *Pool) ping(ctx context.Context, m *member) error {
	start := time.Now()
	_, err := m.o.Version(ctx)
	p.mu.Lock()
	m.probedAt, m.probeLat = time.Now(), time.Since(start)
	if err != nil {
		m.lastErr = err.Error()
	}
	p.mu.Unlock()
	return err
}

// Ping probes every server (bounded by PingTimeout, concurrently): nil while at least one
// answers. A server in rotation that does not answer leaves it, so calls stop going there
// before one of them fails.
func (p *Pool) Ping(ctx context.Context) error {
	if len(p.members) == 1 {
		return p.members[0].o.Ping(ctx)
	}
	errs := make([]error, len(p.members))
	var wg sync.WaitGroup
	for i, m := range p.members {
		wg.Go(func() {
			if errs[i] = p.ping(ctx, m); errs[i] != nil && ctx.Err() == nil {
				p.markDown(m, errs[i])
			}
		})
	}
	wg.Wait()
	var msgs []string
	for i, err := range errs {
		if err == nil {
			return nil
		}
		msgs = append(msgs, fmt.Sprintf("server %d: %v", i, err))
	}
	return fmt.Errorf("no Ollama server answers: %s", strings.Join(msgs, "; "))
}

// --- warm-ups ------------------------------------------------------------------------------------

// WarmUp loads the warm-up models on every server, concurrently, and returns when all are done
// (a server that fails a load is logged, not retried: the first call there loads the model).
func (p *Pool) WarmUp(ctx context.Context) {
	if len(p.warm) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, m := range p.members {
		wg.Go(func() { p.warmServer(ctx, m) })
	}
	wg.Wait()
}

func (p *Pool) warmServer(ctx context.Context, m *member) {
	for _, w := range p.warm {
		if ctx.Err() != nil {
			return
		}
		err := p.load(ctx, m, w)
		var se *StatusError
		switch {
		case err == nil:
		case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
			p.markMissing(m, w.Name)
			p.log.Warn("Ollama server lacks a configured model", "server", m.name, "url", m.url, "model", w.Name)
		default:
			p.log.Warn("Model warm-up failed", "server", m.name, "url", m.url, "model", w.Name, "error", err)
		}
	}
}

func (p *Pool) load(ctx context.Context, m *member, w WarmModel) error {
	ctx, cancel := context.WithTimeout(ctx, p.warmFor)
	defer cancel()
	path, op := "api/generate", "generate"
	var body []byte
	var err error
	if w.Embedding {
		path, op = "api/embed", "embed"
		body, err = json.Marshal(api.EmbedRequest{Model: w.Name, KeepAlive: m.o.keepAlive()})
	} else {
		stream := false
		body, err = json.Marshal(api.GenerateRequest{Model: w.Name, KeepAlive: m.o.keepAlive(), Stream: &stream})
	}
	if err != nil {
		return err
	}
	defer m.o.observe("warm", time.Now())
	resp, err := m.o.post(ctx, op, path, body)
	if err != nil {
		return err
	}
	drainClose(resp.Body)
	return nil
}

// --- calls ---------------------------------------------------------------------------------------

// Chat runs the call on the chosen server; when that server fails before streaming anything,
// the call moves to the next (see Pool). A call that streamed part of an answer is not repeated.
func (p *Pool) Chat(ctx context.Context, lane Lane, req ChatRequest) (ChatResponse, error) {
	if len(p.members) == 1 {
		return p.members[0].o.Chat(ctx, lane, req)
	}
	var streamed atomic.Bool
	if f := req.OnToken; f != nil {
		req.OnToken = func(s string) error {
			streamed.Store(true)
			return f(s)
		}
	}
	var resp ChatResponse
	err := p.run(ctx, "chat", req.Model, lane, nil, func(m *member) error {
		var err error
		resp, err = m.o.Chat(ctx, lane, req)
		return err
	}, streamed.Load)
	return resp, err
}

// run calls try on first (acquired by the caller) or else a server chosen by acquire, moving to
// another as judge says, in rounds over all servers (with the retry backoff between rounds)
// while the failures are of the kind a round may outlive. final stops the moves (a chat that
// streamed).
func (p *Pool) run(ctx context.Context, op, model string, lane Lane, first *member, try func(*member) error, final func() bool) error {
	tried := map[*member]bool{}
	again := true
	m := first
	if m == nil {
		m = p.acquire(model, lane, tried)
	}
	for round := 1; ; {
		err := try(m)
		p.release(m, model, lane, err)
		if err == nil {
			return nil
		}
		move, whole := p.judge(ctx, m, model, err)
		if !move || (final != nil && final()) {
			return err
		}
		again = again && whole
		tried[m] = true
		if m = p.acquire(model, lane, tried); m == nil {
			if !again || round >= p.retry.MaxAttempts {
				return busyIfOverloaded(err)
			}
			if err := sleepCtx(ctx, p.retry.backoff(round, 0)); err != nil {
				return err
			}
			round++
			clear(tried)
			again = true
			m = p.acquire(model, lane, tried)
		}
		p.failovers.WithLabelValues(op).Inc()
	}
}

// Embed cuts the texts into batches sized for the server each is sent to (its EmbedBatchSize,
// or for background work its measured pace) and runs them on the servers as the balancing rule
// chooses, as many at once as the servers' lanes admit. A failed batch moves to another server
// with only the items not embedded yet. Results are in input order.
func (p *Pool) Embed(ctx context.Context, lane Lane, model string, texts []string) ([][]float32, error) {
	if len(p.members) == 1 {
		return p.members[0].o.Embed(ctx, lane, model, texts)
	}
	if len(texts) == 0 {
		return [][]float32{}, nil
	}
	if model == "" {
		return nil, errors.New("ollama embed: no model named")
	}
	pe := &poolEmbed{lane: lane, model: model, texts: texts, out: make([][]float32, len(texts)), calls: map[*member]*embedCall{}}
	workers := 0
	for _, m := range p.members {
		workers += m.o.embed.laneMax[lane]
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(max(workers, 1), len(texts)) {
		wg.Go(func() {
			for wctx.Err() == nil && pe.more() {
				// Checked first so that a worker with nothing left does not take a turn in
				// the tie-break (a one-text call would otherwise always start on one server).
				m := p.acquire(model, lane, nil)
				lo, hi, ok := pe.claim(m)
				if !ok {
					p.release(m, model, lane, errors.New("no work"))
					return
				}
				err := p.run(wctx, "embed", model, lane, m, func(m *member) error {
					return pe.runOn(wctx, m, lo, hi)
				}, nil)
				if err != nil {
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
	dim := len(pe.out[0])
	for i, v := range pe.out {
		if len(v) != dim {
			return nil, fmt.Errorf("ollama embed: text %d has %d dimensions, want %d (do the servers serve the same model?)", i, len(v), dim)
		}
	}
	return pe.out, nil
}

// poolEmbed is one Embed call over the pool: the texts, the shared results, and one embedCall
// per server it used (each with that server's lanes and pace).
type poolEmbed struct {
	lane  Lane
	model string
	texts []string
	out   [][]float32

	mu    sync.Mutex
	next  int
	calls map[*member]*embedCall
}

func (pe *poolEmbed) more() bool {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	return pe.next < len(pe.texts)
}

// claim takes the next batch, sized for m.
func (pe *poolEmbed) claim(m *member) (lo, hi int, ok bool) {
	bs := m.o.opts.EmbedBatchSize
	if pe.lane == Background {
		bs = m.o.pace.batch(m.o.backgroundCallTarget(), bs) // throttle.go: scaled by the background level
	}
	pe.mu.Lock()
	defer pe.mu.Unlock()
	if pe.next >= len(pe.texts) {
		return 0, 0, false
	}
	lo = pe.next
	hi = min(lo+bs, len(pe.texts))
	pe.next = hi
	return lo, hi, true
}

// runOn embeds on m the items of [lo, hi) that have no vector yet (another server may have done
// part of the batch before it failed). Only the goroutine that claimed the batch writes it.
func (pe *poolEmbed) runOn(ctx context.Context, m *member, lo, hi int) error {
	pe.mu.Lock()
	e := pe.calls[m]
	if e == nil {
		e = &embedCall{o: m.o, lane: pe.lane, model: pe.model, texts: pe.texts, out: pe.out, dim: m.o.opts.EmbedDimension}
		pe.calls[m] = e
	}
	pe.mu.Unlock()
	for i := lo; i < hi; {
		if pe.out[i] != nil {
			i++
			continue
		}
		j := i
		for j < hi && pe.out[j] == nil {
			j++
		}
		if err := e.run(ctx, i, j, 1); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// --- status --------------------------------------------------------------------------------------

// ServerStatus is one server of the pool as the pool sees it.
type ServerStatus struct {
	Name       string // index in URLs
	URL        string
	InRotation bool
	Error      string    // why it is out of rotation
	Since      time.Time // when it last entered or left the rotation (zero: in it since the start)
	CheckedAt  time.Time // last probe (zero: not probed yet)
	Latency    time.Duration
}

// Servers reports each server; nil for a single server (its state is the dependency's own).
func (p *Pool) Servers() []ServerStatus {
	if len(p.members) == 1 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ServerStatus, 0, len(p.members))
	for _, m := range p.members {
		s := ServerStatus{Name: m.name, URL: m.url, InRotation: m.up, Since: m.changedAt, CheckedAt: m.probedAt, Latency: m.probeLat}
		if !m.up {
			s.Error = m.lastErr
		}
		out = append(out, s)
	}
	return out
}

// Pools sums the servers' slot pools (chat, then embed): capacities and lanes added up, 0
// capacity when any server's is unbounded, holds as one server counts them (a hold is on all).
func (p *Pool) Pools() []PoolStatus {
	if len(p.members) == 1 {
		return p.members[0].o.Pools()
	}
	var sum []PoolStatus
	for i, m := range p.members {
		ps := m.o.Pools()
		if i == 0 {
			sum = ps
			continue
		}
		for k, s := range ps {
			t := &sum[k]
			if t.Capacity == 0 || s.Capacity == 0 {
				t.Capacity = 0
			} else {
				t.Capacity += s.Capacity
			}
			t.BackgroundMax += s.BackgroundMax
			t.InFlight.Interactive += s.InFlight.Interactive
			t.InFlight.Background += s.InFlight.Background
			t.Queued.Interactive += s.Queued.Interactive
			t.Queued.Background += s.Queued.Background
			t.Holds = max(t.Holds, s.Holds)
		}
	}
	return sum
}

// Loaded lists the models every server holds (each entry names its server); an error only when
// no server answered.
func (p *Pool) Loaded(ctx context.Context) ([]LoadedModel, error) {
	if len(p.members) == 1 {
		return p.members[0].o.Loaded(ctx)
	}
	res := make([][]LoadedModel, len(p.members))
	errs := make([]error, len(p.members))
	var wg sync.WaitGroup
	for i, m := range p.members {
		wg.Go(func() { res[i], errs[i] = m.o.Loaded(ctx) })
	}
	wg.Wait()
	out := []LoadedModel{}
	var msgs []string
	for i, r := range res {
		if errs[i] != nil {
			msgs = append(msgs, fmt.Sprintf("server %d: %v", i, errs[i]))
			continue
		}
		for _, lm := range r {
			lm.Server = p.members[i].name
			out = append(out, lm)
		}
	}
	if len(msgs) == len(p.members) {
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return out, nil
}

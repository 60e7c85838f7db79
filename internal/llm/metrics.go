package llm

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus series. Names are prefixed rag_llm_; pool is "chat" or
// "embed" (the two slot pools), lane is "interactive" or "background", model is the model a
// call names (bounded by the server's config: chat, embedding, summary and tagging models).
type metrics struct {
	chat, embed *gateMetrics
	latency     *prometheus.HistogramVec // op
	embedItems  *prometheus.CounterVec   // lane
	retries     *prometheus.CounterVec   // op
	holds       prometheus.Gauge
	calls       *callMetrics
}

type gateMetrics struct {
	queued, inFlight [2]prometheus.Gauge
	rejected         [2]prometheus.Counter
	wait             [2]prometheus.Observer // time from asking for a slot to getting it
}

// callMetrics are per model and lane, seen from the caller: a whole Chat or Embed call, its
// lane queue, attempts and backoffs included (rag_llm_ollama_request_duration_seconds is one
// HTTP attempt, by op only).
type callMetrics struct {
	duration *prometheus.HistogramVec // op, model, lane
	outcomes *prometheus.CounterVec   // op, model, lane, outcome
	ttft     *prometheus.HistogramVec // model, lane
	tokens   *prometheus.CounterVec   // model, lane, kind
	rate     *prometheus.HistogramVec // model, lane
}

func newMetrics(reg prometheus.Registerer) *metrics {
	queued := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rag_llm_queue_depth",
		Help: "Calls waiting for an Ollama slot, per pool and lane.",
	}, []string{"pool", "lane"})
	inFlight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rag_llm_in_flight",
		Help: "Calls holding an Ollama slot (in flight at Ollama), per pool and lane.",
	}, []string{"pool", "lane"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rag_llm_rejected_total",
		Help: "Calls refused with ErrBusy because the lane's wait queue was full.",
	}, []string{"pool", "lane"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rag_llm_ollama_request_duration_seconds",
		Help: "Duration of each HTTP call to Ollama (one attempt; for chat the whole stream), by operation.",
		// From a ping (ms) to a long answer on a loaded GPU (minutes).
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"op"})
	embedItems := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rag_llm_embed_items_total",
		Help: "Texts embedded successfully, per lane.",
	}, []string{"lane"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rag_llm_retries_total",
		Help: "Ollama calls retried after a retryable failure, by operation.",
	}, []string{"op"})

	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rag_llm_queue_wait_seconds",
		Help: "Time a call waited in its lane for an Ollama slot before it was admitted (0 when a slot was free), per pool and lane. Calls refused (rag_llm_rejected_total) or cancelled while queued are not counted.",
		// From an immediate grant to a background call queued behind minutes of answers.
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"pool", "lane"})
	calls := &callMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rag_llm_call_duration_seconds",
			Help:    "Duration of a whole Chat or Embed call as its caller sees it (lane queue, every attempt and backoff), by op, model and lane.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"op", "model", "lane"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rag_llm_calls_total",
			Help: "Chat and Embed calls by op, model, lane and outcome (ok, busy: refused or Ollama overloaded, canceled: the caller gave up, error).",
		}, []string{"op", "model", "lane", "outcome"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rag_llm_chat_time_to_first_token_seconds",
			Help: "Time from a streamed Chat call to its first content token (lane queue and retries included), by model and lane. rag_chat_time_to_first_token_seconds is the whole answer path (embedding, search, prompt) on top of this.",
			// Like rag_chat_time_to_first_token_seconds, with a finer start.
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 3, 5, 10, 20, 30, 60, 120},
		}, []string{"model", "lane"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rag_llm_chat_tokens_total",
			Help: "Tokens of successful Chat calls as Ollama counted them, by model, lane and kind (prompt, generated).",
		}, []string{"model", "lane", "kind"}),
		rate: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rag_llm_chat_tokens_per_second",
			Help: "Decode speed of each successful Chat call: generated tokens over Ollama's own generation time (eval_count / eval_duration; prompt processing and queueing excluded), by model and lane.",
			// A CPU with a large model (~1/s) to a GPU with a small one (hundreds); the tiny
			// test models reach thousands.
			Buckets: []float64{1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2500, 5000},
		}, []string{"model", "lane"}),
	}

	holds := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rag_llm_background_holds",
		Help: "Answers that asked background calls to wait (HoldBackground: from the question's embedding to the first token). Each pause lapses after MaxYield even while the answer still counts here.",
	})

	queued = register(reg, queued)
	inFlight = register(reg, inFlight)
	rejected = register(reg, rejected)
	latency = register(reg, latency)
	embedItems = register(reg, embedItems)
	retries = register(reg, retries)
	holds = register(reg, holds)
	wait = register(reg, wait)
	calls.duration = register(reg, calls.duration)
	calls.outcomes = register(reg, calls.outcomes)
	calls.ttft = register(reg, calls.ttft)
	calls.tokens = register(reg, calls.tokens)
	calls.rate = register(reg, calls.rate)

	gm := func(pool string) *gateMetrics {
		m := &gateMetrics{}
		for _, l := range []Lane{Interactive, Background} {
			m.queued[l] = queued.WithLabelValues(pool, l.String())
			m.inFlight[l] = inFlight.WithLabelValues(pool, l.String())
			m.rejected[l] = rejected.WithLabelValues(pool, l.String())
			m.wait[l] = wait.WithLabelValues(pool, l.String())
		}
		return m
	}
	return &metrics{chat: gm("chat"), embed: gm("embed"), latency: latency, embedItems: embedItems, retries: retries, holds: holds, calls: calls}
}

// callObs measures one Chat or Embed call; startCall begins it, end records it.
type callObs struct {
	ctx       context.Context // the caller's: its end means the caller gave up
	m         *callMetrics
	op, model string
	lane      Lane
	start     time.Time
	firstOnce sync.Once
}

func (m *metrics) startCall(ctx context.Context, op string, lane Lane, model string) *callObs {
	return &callObs{ctx: ctx, m: m.calls, op: op, model: model, lane: lane, start: time.Now()}
}

// onToken wraps a chat call's OnToken to time its first token. A nil OnToken stays nil: the
// Ollama client retries a failed call only when nothing was handed to OnToken, so a caller that
// streams nothing must keep that (its calls then have no time to first token).
func (c *callObs) onToken(f func(string) error) func(string) error {
	if f == nil {
		return nil
	}
	return func(s string) error {
		c.firstOnce.Do(func() {
			c.m.ttft.WithLabelValues(c.model, c.lane.String()).Observe(time.Since(c.start).Seconds())
		})
		return f(s)
	}
}

// end records the call's duration and outcome and, for a successful chat, Ollama's token counts
// and decode speed.
func (c *callObs) end(res ChatResponse, err error) {
	lane := c.lane.String()
	c.m.duration.WithLabelValues(c.op, c.model, lane).Observe(time.Since(c.start).Seconds())
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrBusy):
		outcome = "busy"
	case c.ctx.Err() != nil:
		outcome = "canceled"
	default:
		outcome = "error"
	}
	c.m.outcomes.WithLabelValues(c.op, c.model, lane, outcome).Inc()
	if err != nil || c.op != "chat" {
		return
	}
	c.m.tokens.WithLabelValues(c.model, lane, "prompt").Add(float64(res.PromptTokens))
	c.m.tokens.WithLabelValues(c.model, lane, "generated").Add(float64(res.GeneratedTokens))
	if res.GeneratedTokens > 0 && res.EvalDuration > 0 {
		c.m.rate.WithLabelValues(c.model, lane).Observe(float64(res.GeneratedTokens) / res.EvalDuration.Seconds())
	}
}

// register adds c to reg (nil: metrics are kept but not exported). When an identical collector
// is already registered (a second client on the same registry, a test re-creating the client)
// the existing one is reused so both feed the same series; any other registration error is a
// programming error (a name clash with different labels) and panics like MustRegister.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

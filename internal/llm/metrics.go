package llm

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus series. Names are prefixed rag_llm_; pool is "chat" or
// "embed" (the two slot pools), lane is "interactive" or "background".
type metrics struct {
	chat, embed *gateMetrics
	latency     *prometheus.HistogramVec // op
	embedItems  *prometheus.CounterVec   // lane
	retries     *prometheus.CounterVec   // op
	holds       prometheus.Gauge
}

type gateMetrics struct {
	queued, inFlight [2]prometheus.Gauge
	rejected         [2]prometheus.Counter
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

	gm := func(pool string) *gateMetrics {
		m := &gateMetrics{}
		for _, l := range []Lane{Interactive, Background} {
			m.queued[l] = queued.WithLabelValues(pool, l.String())
			m.inFlight[l] = inFlight.WithLabelValues(pool, l.String())
			m.rejected[l] = rejected.WithLabelValues(pool, l.String())
		}
		return m
	}
	return &metrics{chat: gm("chat"), embed: gm("embed"), latency: latency, embedItems: embedItems, retries: retries, holds: holds}
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

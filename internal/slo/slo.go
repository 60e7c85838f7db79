package slo

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// Objective names, the value of the objective label.
const (
	ChatTTFTP95 = "chat_ttft_p95"
	HealthzP99  = "healthz_p99"
)

// Tracker measures both objectives over the window, exports them (the operator reads these
// series into status.slo), and, when a chat target is declared, runs the Controller that
// holds it.
type Tracker struct {
	targets serverconfig.SLOTargets
	ttft    *Window
	healthz *Window
	ctl     *Controller // nil without a chat target: background work runs at its limits
	now     func() time.Time

	ttftP95, healthzP99, target, samples, throttle *prometheus.Desc
}

// Options are the Tracker's collaborators.
type Options struct {
	// Actuator receives the background level; needed only with a chat target.
	Actuator Actuator
	// Controller tunes the AIMD loop (its Target is the chat target).
	Controller ControllerOptions
	// Capacity bounds each window's samples (0: DefaultCapacity).
	Capacity int
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// New builds the tracker for the targets (zero targets: measured and exported, not held).
func New(targets serverconfig.SLOTargets, o Options) *Tracker {
	if targets.Window <= 0 {
		targets.Window = serverconfig.DefaultSLOWindow
	}
	t := &Tracker{
		targets: targets,
		ttft:    NewWindow(targets.Window, o.Capacity),
		healthz: NewWindow(targets.Window, o.Capacity),
		now:     o.Now,
		ttftP95: prometheus.NewDesc("rag_slo_chat_ttft_p95_seconds",
			"Chat time to first token, 95th percentile over the SLO window (exact, over the window's samples; 0 while rag_slo_samples is 0).", nil, nil),
		healthzP99: prometheus.NewDesc("rag_slo_healthz_p99_seconds",
			"/healthz latency seen by the server's own probe (a new connection every second, as a kubelet probes), 99th percentile over the SLO window (0 while rag_slo_samples is 0).", nil, nil),
		target: prometheus.NewDesc("rag_slo_target_seconds",
			"The declared target per objective (chat_ttft_p95, healthz_p99); absent for an objective not declared.", []string{"objective"}, nil),
		samples: prometheus.NewDesc("rag_slo_samples",
			"Samples in the SLO window per objective: answers with a first token, /healthz probes.", []string{"objective"}, nil),
		throttle: prometheus.NewDesc("rag_background_throttle",
			"Background work's level as a fraction of its configured limits (1: unthrottled); lowered by AIMD while chat TTFT p95 misses its target.", nil, nil),
	}
	if t.now == nil {
		t.now = time.Now
	}
	if targets.ChatTTFTP95 > 0 && o.Actuator != nil {
		co := o.Controller
		co.Target = targets.ChatTTFTP95
		t.ctl = NewController(co, o.Actuator)
	}
	return t
}

// Targets are the declared targets (Window defaulted).
func (t *Tracker) Targets() serverconfig.SLOTargets { return t.targets }

// Controller is the AIMD loop, nil without a chat target.
func (t *Tracker) Controller() *Controller { return t.ctl }

// ObserveChatTTFT records one answer's time to first token (cached and no-context answers are
// not model answers and are not recorded).
func (t *Tracker) ObserveChatTTFT(d time.Duration) {
	t.ttft.Add(t.now(), d)
	if t.ctl != nil {
		t.ctl.Observe(d)
	}
}

// ChatStarted records a question that waits for its first token until done is called.
func (t *Tracker) ChatStarted() (done func()) {
	if t.ctl == nil {
		return func() {}
	}
	return t.ctl.Started()
}

// ObserveHealthz records one /healthz round trip.
func (t *Tracker) ObserveHealthz(d time.Duration) { t.healthz.Add(t.now(), d) }

// ChatTTFT is the p95 over the window and its sample count.
func (t *Tracker) ChatTTFT() (time.Duration, int) { return t.ttft.Quantile(t.now(), .95) }

// Healthz is the p99 over the window and its sample count.
func (t *Tracker) Healthz() (time.Duration, int) { return t.healthz.Quantile(t.now(), .99) }

// Level is the background level (1 without a chat target).
func (t *Tracker) Level() float64 {
	if t.ctl == nil {
		return 1
	}
	return t.ctl.Level()
}

// Run runs the controller (if any) until ctx ends.
func (t *Tracker) Run(ctx context.Context) {
	if t.ctl != nil {
		t.ctl.Run(ctx)
	}
}

// Describe implements prometheus.Collector.
func (t *Tracker) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{t.ttftP95, t.healthzP99, t.target, t.samples, t.throttle} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: quantiles are computed at scrape time.
func (t *Tracker) Collect(ch chan<- prometheus.Metric) {
	ttft, nTTFT := t.ChatTTFT()
	hz, nHz := t.Healthz()
	ch <- prometheus.MustNewConstMetric(t.ttftP95, prometheus.GaugeValue, ttft.Seconds())
	ch <- prometheus.MustNewConstMetric(t.healthzP99, prometheus.GaugeValue, hz.Seconds())
	ch <- prometheus.MustNewConstMetric(t.samples, prometheus.GaugeValue, float64(nTTFT), ChatTTFTP95)
	ch <- prometheus.MustNewConstMetric(t.samples, prometheus.GaugeValue, float64(nHz), HealthzP99)
	if t.targets.ChatTTFTP95 > 0 {
		ch <- prometheus.MustNewConstMetric(t.target, prometheus.GaugeValue, t.targets.ChatTTFTP95.Seconds(), ChatTTFTP95)
	}
	if t.targets.HealthzP99 > 0 {
		ch <- prometheus.MustNewConstMetric(t.target, prometheus.GaugeValue, t.targets.HealthzP99.Seconds(), HealthzP99)
	}
	ch <- prometheus.MustNewConstMetric(t.throttle, prometheus.GaugeValue, t.Level())
}

// ProbeHealthz GETs url (the server's own /healthz) every interval on a new connection each
// time, as a kubelet's probe does, and records the round trip until ctx ends. A probe that
// fails records the time it took to fail (at most the 10 s timeout): the server was not
// answering for at least that long.
//
// The server's own view of the handler (microseconds) would hide what the seed guide's
// failure was: a process too busy to accept and answer. A probe from inside the process
// shares its scheduler and sockets, so it sees that, and is conservative (its own scheduling
// delay counts too).
func (t *Tracker) ProbeHealthz(ctx context.Context, url string, interval time.Duration) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // the answer is part of the round trip
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return
		}
		t.ObserveHealthz(time.Since(start))
	}
}

package controllers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// The RAG server's metrics the operator reads (on its anonymous metrics port). The server
// computes the percentiles over spec.slo.window itself, from every request it served: the
// operator only compares them with the targets, so a scrape missed costs nothing.
const (
	metricChatTTFTP95  = "rag_slo_chat_ttft_p95_seconds"
	metricHealthzP99   = "rag_slo_healthz_p99_seconds"
	metricSLOSamples   = "rag_slo_samples"
	metricThrottle     = "rag_background_throttle"
	metricIngestQueue  = "rag_ingest_queue_depth"
	metricDependencyUp = "rag_dependency_up"
	objectiveChatTTFT  = "chat_ttft_p95"
	objectiveHealthz   = "healthz_p99"
	serverMetricsLimit = 4 << 20 // a metrics page is a few KiB; never read an unbounded body
)

// RagServerMetricsRead are the RAG server metrics the operator reads (test/monitoring checks
// that a real server exports each).
var RagServerMetricsRead = []string{metricChatTTFTP95, metricHealthzP99, metricSLOSamples, metricThrottle, metricIngestQueue, metricDependencyUp}

// serverSample is what one RAG server replica reported.
type serverSample struct {
	chatTTFT, healthz              float64 // seconds; valid when the sample count is > 0
	chatSamples, healthzSamples    int64
	throttle                       float64
	hasThrottle                    bool
	queueDepth                     float64
	hasChatTTFT, hasHealthzLatency bool
	// down are the dependencies the replica's last probe found unavailable (rag_dependency_up
	// 0), by name: ollama (or ollama/<i> in a pool), store, vector, storage.
	down []string
}

// serverMetrics is every replica's sample; err says why none could be read.
type serverMetrics struct {
	replicas []serverSample
	err      error
}

// queueDepth is the largest backlog any replica reports (on PostgreSQL they share one queue,
// so they report the same figure; the largest is the safe reading).
func (m *serverMetrics) queueDepth() (float64, bool) {
	if m == nil || m.err != nil || len(m.replicas) == 0 {
		return 0, false
	}
	var depth float64
	for _, r := range m.replicas {
		depth = max(depth, r.queueDepth)
	}
	return depth, true
}

// MetricsReader fetches one Prometheus text page; the default is a plain HTTP GET.
type MetricsReader interface {
	Read(ctx context.Context, url string) (io.ReadCloser, error)
}

type httpMetricsReader struct{ c *http.Client }

func (h httpMetricsReader) Read(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

// parseServerSample reads the figures the operator uses from one metrics page.
func parseServerSample(r io.Reader) (serverSample, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(r, serverMetricsLimit))
	if err != nil {
		return serverSample{}, err
	}
	var s serverSample
	gauge := func(name string) (float64, bool) {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return 0, false
		}
		return value(f.GetMetric()[0]), true
	}
	s.chatTTFT, s.hasChatTTFT = gauge(metricChatTTFTP95)
	s.healthz, s.hasHealthzLatency = gauge(metricHealthzP99)
	s.throttle, s.hasThrottle = gauge(metricThrottle)
	s.queueDepth, _ = gauge(metricIngestQueue)
	if f := families[metricDependencyUp]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "dependency" && value(m) == 0 {
					s.down = append(s.down, l.GetValue())
				}
			}
		}
		sort.Strings(s.down)
	}
	if f := families[metricSLOSamples]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "objective" {
					continue
				}
				switch l.GetValue() {
				case objectiveChatTTFT:
					s.chatSamples = int64(value(m))
				case objectiveHealthz:
					s.healthzSamples = int64(value(m))
				}
			}
		}
	}
	return s, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// ragServerMetricsURLs are the metrics pages of the appliance's ready RAG server pods, in pod
// name order (or the override the tests and the demo set).
func (r *RagApplianceReconciler) ragServerMetricsURLs(ctx context.Context, ra *ragv1.RagAppliance) ([]string, error) {
	if r.External != nil {
		r.External.mu.Lock()
		override, outside := r.External.RagServerMetricsURL, r.External.OllamaURL != "" || r.External.QdrantAddress != ""
		r.External.mu.Unlock()
		if override != "" {
			return []string{override}, nil
		}
		if outside {
			// Endpoint overrides mean the operator runs outside the cluster, where pod
			// addresses do not route: waiting on them would only stall every pass.
			return nil, fmt.Errorf("the operator runs outside the cluster (endpoint overrides) without a RAG server metrics override")
		}
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(ra.Namespace), client.MatchingLabels(selectorLabels(ra, componentRagServer))); err != nil {
		return nil, err
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	var urls []string
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || !podReady(&p) {
			continue
		}
		urls = append(urls, "http://"+hostPort(p.Status.PodIP, ragServerMetricsPort)+"/metrics")
	}
	return urls, nil
}

func hostPort(ip string, port int) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + itoa(port)
	}
	return ip + ":" + itoa(port)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readServerMetrics scrapes every ready replica; a replica that does not answer is skipped
// (the others still count), and only when none answers is the error kept.
func (r *RagApplianceReconciler) readServerMetrics(ctx context.Context, ra *ragv1.RagAppliance) *serverMetrics {
	urls, err := r.ragServerMetricsURLs(ctx, ra)
	if err != nil {
		return &serverMetrics{err: err}
	}
	if len(urls) == 0 {
		return &serverMetrics{err: fmt.Errorf("no ready RAG server pod to read metrics from")}
	}
	reader := r.metricsReader()
	out := &serverMetrics{}
	var errs []string
	for _, u := range urls {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		body, err := reader.Read(ctx, u)
		if err == nil {
			var s serverSample
			s, err = parseServerSample(body)
			_ = body.Close()
			if err == nil {
				out.replicas = append(out.replicas, s)
			}
		}
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(out.replicas) == 0 {
		out.err = fmt.Errorf("RAG server metrics: %s", strings.Join(errs, "; "))
	}
	return out
}

func (r *RagApplianceReconciler) metricsReader() MetricsReader {
	if r.External != nil && r.External.Metrics != nil {
		return r.External.Metrics
	}
	return httpMetricsReader{c: &http.Client{Timeout: 5 * time.Second}}
}

// reconcileSLO reads the RAG server's metrics (also used by the bulk-ingest window) and
// reports spec.slo's attainment in status.slo and the SLOMet condition. It writes no child.
func (r *RagApplianceReconciler) reconcileSLO(ctx context.Context, s *scope) (subResult, error) {
	ra := s.ra
	if ra.Spec.RagServer.Replicas == 0 || s.ragServer.Status != "True" {
		s.serverMetrics = &serverMetrics{err: fmt.Errorf("the RAG server is not ready")}
		ra.Status.SLO = nil
		setCondition(ra, ragv1.ConditionSLOMet, unknownState(ragv1.ReasonMetricsUnavailable, "the RAG server is not ready"))
		setCondition(ra, ragv1.ConditionDependenciesReady, unknownState(ragv1.ReasonMetricsUnavailable, "the RAG server is not ready"))
		return subResult{}, nil
	}
	s.serverMetrics = r.readServerMetrics(ctx, ra)
	status, st := sloStatus(ra.Spec.SLO, s.serverMetrics)
	ra.Status.SLO = status
	setCondition(ra, ragv1.ConditionSLOMet, st)
	setCondition(ra, ragv1.ConditionDependenciesReady, dependenciesState(s.serverMetrics))
	// The figures move with traffic; the periodic pass (secretResync) refreshes them.
	return subResult{requeueAfter: secretResync}, nil
}

// sloStatus compares the replicas' percentiles with the targets: the worst replica counts
// (a user is served by any of them), samples add up.
func sloStatus(spec ragv1.SLOSpec, m *serverMetrics) (*ragv1.SLOStatus, state) {
	if m.err != nil {
		return nil, unknownState(ragv1.ReasonMetricsUnavailable, m.err.Error())
	}
	out := &ragv1.SLOStatus{Window: string(spec.Window)}
	chat := objective(spec.ChatTTFTP95, m.replicas, func(s serverSample) (float64, int64, bool) {
		return s.chatTTFT, s.chatSamples, s.hasChatTTFT
	})
	health := objective(spec.HealthzP99, m.replicas, func(s serverSample) (float64, int64, bool) {
		return s.healthz, s.healthzSamples, s.hasHealthzLatency
	})
	out.ChatTTFTP95, out.HealthzP99 = chat, health
	var throttle float64
	var n int
	for _, r := range m.replicas {
		if r.hasThrottle {
			throttle += r.throttle
			n++
		}
	}
	if n > 0 {
		out.BackgroundThrottle = strconv.FormatFloat(throttle/float64(n), 'f', 2, 64)
	}
	var missed, measured []string
	for _, o := range []struct {
		name string
		st   *ragv1.ObjectiveStatus
	}{{"chat time to first token p95", chat}, {"/healthz p99", health}} {
		if o.st == nil || o.st.Samples == 0 {
			continue
		}
		line := o.name + " " + o.st.Measured + " (target " + o.st.Target + ")"
		measured = append(measured, line)
		if !o.st.Met {
			missed = append(missed, line)
		}
	}
	switch {
	case len(missed) > 0:
		return out, falseState(ragv1.ReasonObjectiveMissed, "over the last "+out.Window+": "+strings.Join(missed, "; ")+"; background throttle "+orDash(out.BackgroundThrottle))
	case len(measured) == 0:
		return out, unknownState(ragv1.ReasonNoSamples, "nothing measured in the last "+out.Window+" yet")
	case chat == nil || chat.Samples == 0:
		return out, trueState(ragv1.ReasonObjectivesMet, "over the last "+out.Window+": "+strings.Join(measured, "; ")+"; no chat answers yet")
	}
	return out, trueState(ragv1.ReasonObjectivesMet, "over the last "+out.Window+": "+strings.Join(measured, "; "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// objective folds the replicas' readings of one objective; nil when none reports it.
func objective(target ragv1.Duration, replicas []serverSample, read func(serverSample) (float64, int64, bool)) *ragv1.ObjectiveStatus {
	want, err := time.ParseDuration(string(target))
	if err != nil || want <= 0 {
		return nil
	}
	var worst float64
	var samples int64
	var seen bool
	for _, r := range replicas {
		v, n, ok := read(r)
		if !ok {
			continue
		}
		seen = true
		samples += n
		if n > 0 {
			worst = max(worst, v)
		}
	}
	if !seen {
		return nil
	}
	st := &ragv1.ObjectiveStatus{Target: string(target), Samples: samples}
	if samples > 0 {
		// Millisecond precision: finer figures would rewrite the status on every pass.
		got := time.Duration(worst * float64(time.Second)).Round(time.Millisecond)
		st.Measured = got.String()
		st.Met = got <= want
	}
	return st
}

// dependenciesState is what the RAG server replicas see of their dependencies. The server stays
// Ready while one is down (it keeps serving what it can and re-queues work, never failing a
// document for an outage), so the outage is this condition's to report.
func dependenciesState(m *serverMetrics) state {
	if m.err != nil {
		return unknownState(ragv1.ReasonMetricsUnavailable, m.err.Error())
	}
	var down []string
	for i, r := range m.replicas {
		for _, d := range r.down {
			if len(m.replicas) > 1 {
				d += " (replica " + itoa(i) + ")"
			}
			down = append(down, d)
		}
	}
	if len(down) > 0 {
		return falseState(ragv1.ReasonDependencyDown, "the RAG server cannot use: "+strings.Join(down, ", ")+"; work waits in its queue and resumes when they answer")
	}
	return trueState(ragv1.ReasonDependenciesUp, "the RAG server reaches every dependency")
}

package controllers

import (
	"strings"
	"testing"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// page is a RAG server replica's metrics page, as the server writes it.
func page(ttft, healthz, throttle, queue string, chatSamples, healthzSamples string) string {
	return pageWith(ttft, healthz, throttle, queue, chatSamples, healthzSamples, "1")
}

func pageWith(ttft, healthz, throttle, queue, chatSamples, healthzSamples, storageUp string) string {
	return `# HELP rag_slo_chat_ttft_p95_seconds Chat time to first token, p95 over the SLO window.
# TYPE rag_slo_chat_ttft_p95_seconds gauge
rag_slo_chat_ttft_p95_seconds ` + ttft + `
# TYPE rag_slo_healthz_p99_seconds gauge
rag_slo_healthz_p99_seconds ` + healthz + `
# TYPE rag_slo_samples gauge
rag_slo_samples{objective="chat_ttft_p95"} ` + chatSamples + `
rag_slo_samples{objective="healthz_p99"} ` + healthzSamples + `
# TYPE rag_background_throttle gauge
rag_background_throttle ` + throttle + `
# TYPE rag_ingest_queue_depth gauge
rag_ingest_queue_depth ` + queue + `
# TYPE rag_dependency_up gauge
rag_dependency_up{dependency="ollama"} 1
rag_dependency_up{dependency="storage"} ` + storageUp + `
rag_dependency_up{dependency="vector"} 1
# TYPE rag_http_requests_total counter
rag_http_requests_total{code="200"} 12
`
}

func TestSLOStatus(t *testing.T) {
	spec := ragv1.SLOSpec{ChatTTFTP95: "2s", HealthzP99: "100ms", Window: "10m"}
	read := func(pages ...string) *serverMetrics {
		m := &serverMetrics{}
		for _, p := range pages {
			s, err := parseServerSample(strings.NewReader(p))
			if err != nil {
				t.Fatal(err)
			}
			m.replicas = append(m.replicas, s)
		}
		return m
	}
	cases := []struct {
		name       string
		m          *serverMetrics
		status     string
		reason     string
		chat       string // measured chat p95
		met        bool
		throttle   string
		samples    int64
		inMessage  string
		queueDepth float64
	}{
		{name: "met", m: read(page("0.8123", "0.004", "1", "0", "40", "120")), status: "True", reason: ragv1.ReasonObjectivesMet,
			chat: "812ms", met: true, throttle: "1.00", samples: 40, inMessage: "chat time to first token p95 812ms (target 2s)"},
		{name: "worst replica counts, samples add up, throttle averages", m: read(page("0.5", "0.004", "1", "30", "10", "60"), page("2.5", "0.01", "0.5", "30", "5", "60")),
			status: "False", reason: ragv1.ReasonObjectiveMissed, chat: "2.5s", met: false, throttle: "0.75", samples: 15,
			inMessage: "chat time to first token p95 2.5s (target 2s); background throttle 0.75", queueDepth: 30},
		{name: "no questions yet", m: read(page("0", "0.003", "1", "0", "0", "50")), status: "True", reason: ragv1.ReasonObjectivesMet,
			chat: "", met: false, throttle: "1.00", samples: 0, inMessage: "no chat answers yet"},
		{name: "nothing measured", m: read(page("0", "0", "1", "0", "0", "0")), status: "Unknown", reason: ragv1.ReasonNoSamples, throttle: "1.00"},
		{name: "healthz missed", m: read(page("0.3", "0.25", "0.25", "0", "3", "50")), status: "False", reason: ragv1.ReasonObjectiveMissed,
			chat: "300ms", met: true, throttle: "0.25", samples: 3, inMessage: "/healthz p99 250ms (target 100ms)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, cond := sloStatus(spec, tc.m)
			if string(cond.Status) != tc.status || cond.Reason != tc.reason || !strings.Contains(cond.Message, tc.inMessage) {
				t.Fatalf("condition %s/%s %q; want %s/%s containing %q", cond.Status, cond.Reason, cond.Message, tc.status, tc.reason, tc.inMessage)
			}
			if st.BackgroundThrottle != tc.throttle || st.Window != "10m" {
				t.Errorf("throttle %q window %q", st.BackgroundThrottle, st.Window)
			}
			if tc.status != "Unknown" {
				if st.ChatTTFTP95 == nil || st.ChatTTFTP95.Measured != tc.chat || st.ChatTTFTP95.Met != tc.met || st.ChatTTFTP95.Samples != tc.samples || st.ChatTTFTP95.Target != "2s" {
					t.Errorf("chat objective %+v; want measured %q met %v samples %d", st.ChatTTFTP95, tc.chat, tc.met, tc.samples)
				}
			}
			if depth, ok := tc.m.queueDepth(); !ok || depth != tc.queueDepth {
				t.Errorf("queue depth %v %v, want %v", depth, ok, tc.queueDepth)
			}
		})
	}
	// No replica answered: nothing is claimed, and the backlog is unknown (the bulk-ingest
	// window is left as it is).
	m := &serverMetrics{err: errString("connection refused")}
	if st, cond := sloStatus(spec, m); st != nil || cond.Reason != ragv1.ReasonMetricsUnavailable || string(cond.Status) != "Unknown" {
		t.Errorf("unreadable metrics: %+v %+v", st, cond)
	}
	if _, ok := m.queueDepth(); ok {
		t.Error("unreadable metrics gave a backlog")
	}
	if _, err := parseServerSample(strings.NewReader("rag_slo_chat_ttft_p95_seconds{ nonsense")); err == nil {
		t.Error("a malformed page was accepted")
	}
}

// TestDependenciesState: an outage the RAG server sees is the appliance's condition, naming the
// dependency and the replica.
func TestDependenciesState(t *testing.T) {
	parse := func(p string) serverSample {
		s, err := parseServerSample(strings.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	up := parse(page("0.1", "0.001", "1", "0", "1", "1"))
	full := parse(pageWith("0.1", "0.001", "1", "0", "1", "1", "0"))
	if st := dependenciesState(&serverMetrics{replicas: []serverSample{up}}); st.Reason != ragv1.ReasonDependenciesUp || string(st.Status) != "True" {
		t.Errorf("all up: %+v", st)
	}
	st := dependenciesState(&serverMetrics{replicas: []serverSample{up, full}})
	if st.Reason != ragv1.ReasonDependencyDown || string(st.Status) != "False" || !strings.Contains(st.Message, "storage (replica 1)") {
		t.Errorf("storage down on one replica: %+v", st)
	}
	if st := dependenciesState(&serverMetrics{err: errString("refused")}); st.Reason != ragv1.ReasonMetricsUnavailable {
		t.Errorf("unreadable: %+v", st)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

package ingest

import "github.com/prometheus/client_golang/prometheus"

// Job kinds, as metric labels.
const (
	jobDocument = "document"
	jobEnrich   = "enrich"
)

// Metrics are the pipeline's Prometheus series.
type Metrics struct {
	byStatus *prometheus.GaugeVec
	queue    prometheus.Gauge
	inFlight prometheus.Gauge
	docs     *prometheus.CounterVec
	chunks   prometheus.Counter
	duration prometheus.Histogram
	enrich   *prometheus.CounterVec
	deferred *prometheus.CounterVec
	blocked  *prometheus.GaugeVec

	reconciled    *prometheus.CounterVec
	sweptPoints   prometheus.Counter
	reconcileDone prometheus.Gauge
}

// NewMetrics creates the series and registers them on reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		byStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rag_documents", Help: "Documents by status (refreshed every few seconds).",
		}, []string{"status"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rag_ingest_queue_depth", Help: "Documents pending or processing.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rag_ingest_in_flight", Help: "Documents being processed now.",
		}),
		docs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rag_ingest_documents_total", Help: "Documents processed, by outcome (ready, failed; retried: sent back to the queue because a dependency was down).",
		}, []string{"outcome"}),
		chunks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rag_ingest_chunks_embedded_total", Help: "Chunks embedded and upserted.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rag_ingest_document_duration_seconds", Help: "Time to process one document to ready.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		enrich: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rag_enrich_documents_total", Help: "Summary/auto-tag jobs, by outcome (done, failed; deferred: sent back to the queue because a dependency was down).",
		}, []string{"outcome"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rag_ingest_deferred_total",
			Help: "Jobs (document: parse to upsert; enrich: summary and tags) put back in the queue because a dependency was unavailable, by dependency (ollama, vector, storage: the data volume) and reason (unreachable, busy, timeout, server_error, model_missing, collection_missing; storage: full, read_only).",
		}, []string{"job", "dependency", "reason"}),
		blocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rag_ingest_blocked",
			Help: "1 while the workers of a job kind (document, enrich) wait for a dependency (ollama, vector, storage: the data volume full or read-only) to come back, from its last failure to the next success; 0 otherwise.",
		}, []string{"job", "dependency"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rag_reconcile_documents_total",
			Help: "Documents the startup reconciliation of the vector store with the document store acted on: swept (points of a document the store does not know, deleted) and requeued (a ready document whose points are missing, queued again).",
		}, []string{"action"}),
		sweptPoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rag_reconcile_swept_points_total", Help: "Points deleted by the startup reconciliation because their document is unknown to the store.",
		}),
		reconcileDone: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rag_reconcile_done", Help: "1 once the startup reconciliation of the vector store has completed a pass, 0 before.",
		}),
	}
	for _, a := range []string{"swept", "requeued"} {
		m.reconciled.WithLabelValues(a)
	}
	for _, o := range []string{"ready", "failed", "retried"} {
		m.docs.WithLabelValues(o)
	}
	for _, o := range []string{"done", "failed", "deferred"} {
		m.enrich.WithLabelValues(o)
	}
	for _, j := range []string{jobDocument, jobEnrich} {
		for _, d := range []string{DepOllama, DepVector, DepStorage} {
			m.blocked.WithLabelValues(j, d)
		}
	}
	if reg != nil {
		reg.MustRegister(m.byStatus, m.queue, m.inFlight, m.docs, m.chunks, m.duration, m.enrich, m.deferred, m.blocked,
			m.reconciled, m.sweptPoints, m.reconcileDone)
	}
	return m
}

package controllers

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

// Options configure the reconciler from the manager's flags.
type Options struct {
	// OllamaURL and QdrantAddress override the in-cluster endpoints for every appliance (for
	// an operator running outside the cluster, e.g. the demo).
	OllamaURL     string
	QdrantAddress string
	// RagServerMetricsURL overrides the RAG server pods' metrics pages (SLO status, backlog).
	RagServerMetricsURL string
	// SkipQdrantVersionCheck turns off the go-client's server version check.
	SkipQdrantVersionCheck bool
	// ModelSyncImage is the image of the model-creation Jobs.
	ModelSyncImage string
	// ModelSyncRetryAfter is how long a failed model-creation Job is kept before the variant is
	// tried again (0: DefaultModelSyncRetryAfter).
	ModelSyncRetryAfter time.Duration
	// OperatorNamespace is the manager's own namespace (for the NetworkPolicies).
	OperatorNamespace string
}

// Setup registers the RagAppliance reconciler with a manager.
func Setup(mgr ctrl.Manager, opts Options) error {
	ext := NewExternalClients(opts.OllamaURL, opts.QdrantAddress)
	ext.SkipQdrantVersionCheck = opts.SkipQdrantVersionCheck
	ext.RagServerMetricsURL = opts.RagServerMetricsURL
	return (&RagApplianceReconciler{
		Client:              mgr.GetClient(),
		Scheme:              mgr.GetScheme(),
		APIReader:           mgr.GetAPIReader(),
		Recorder:            mgr.GetEventRecorder("rag-operator"),
		External:            ext,
		ModelSyncImage:      opts.ModelSyncImage,
		ModelSyncRetryAfter: opts.ModelSyncRetryAfter,
		OperatorNamespace:   opts.OperatorNamespace,
	}).SetupWithManager(mgr)
}

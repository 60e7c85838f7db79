package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"
)

// Setup registers the RagAppliance reconciler with a manager.
func Setup(mgr ctrl.Manager) error {
	return (&RagApplianceReconciler{
		Client:    mgr.GetClient(),
		Scheme:    mgr.GetScheme(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("rag-operator"),
	}).SetupWithManager(mgr)
}

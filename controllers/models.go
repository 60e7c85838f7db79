package controllers

import (
	"context"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// reconcileModels creates and verifies the model variants once Ollama is available.
func (r *RagApplianceReconciler) reconcileModels(ctx context.Context, s *scope) (subResult, error) {
	if s.ollama.Status != "True" {
		setCondition(s.ra, ragv1.ConditionModelsReady, falseState(ragv1.ReasonWaitingForOllama, "waiting for Ollama to be available"))
		return subResult{}, nil
	}
	setCondition(s.ra, ragv1.ConditionModelsReady, unknownState(ragv1.ReasonModelSyncRunning, "model variants not yet verified"))
	return subResult{}, nil
}

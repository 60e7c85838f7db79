package controllers

import (
	"context"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// ExternalClients reaches the APIs of the components the operator deploys.
type ExternalClients struct{}

// reconcileCollection creates or updates the Qdrant collection once Qdrant is ready.
func (r *RagApplianceReconciler) reconcileCollection(ctx context.Context, s *scope) (subResult, error) {
	if s.qdrant.Status != "True" {
		setCondition(s.ra, ragv1.ConditionCollectionReady, falseState(ragv1.ReasonWaitingForQdrant, "waiting for Qdrant to be ready"))
		return subResult{}, nil
	}
	setCondition(s.ra, ragv1.ConditionCollectionReady, unknownState(ragv1.ReasonUnreachable, "collection not yet verified"))
	return subResult{}, nil
}

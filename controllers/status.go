package controllers

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/ollamaversion"
)

// state is a condition's status, reason and message before it is stamped on the object.
type state struct {
	Status  metav1.ConditionStatus
	Reason  string
	Message string
}

func trueState(reason, msg string) state  { return state{metav1.ConditionTrue, reason, msg} }
func falseState(reason, msg string) state { return state{metav1.ConditionFalse, reason, msg} }
func unknownState(reason, msg string) state {
	return state{metav1.ConditionUnknown, reason, msg}
}

// deploymentState says whether a Deployment has rolled out want replicas of its current
// template. It reads only the object's own status, so it is safe on the apply response.
func deploymentState(d *appsv1.Deployment, want int32) state {
	kind := "Deployment " + d.Name
	switch {
	case want == 0:
		return falseState(ragv1.ReasonScaledDown, kind+" is scaled to 0 replicas")
	case d.Status.ObservedGeneration < d.Generation:
		return falseState(ragv1.ReasonProgressing, fmt.Sprintf("%s: generation %d not yet observed by the Deployment controller", kind, d.Generation))
	case d.Status.UpdatedReplicas < want:
		return falseState(ragv1.ReasonProgressing, fmt.Sprintf("%s: %d of %d replicas updated", kind, d.Status.UpdatedReplicas, want))
	case d.Status.AvailableReplicas < want:
		if st, ok := deploymentRefused(d); ok {
			return st
		}
		return falseState(ragv1.ReasonUnavailable, fmt.Sprintf("%s: %d of %d replicas available", kind, d.Status.AvailableReplicas, want))
	default:
		return trueState(ragv1.ReasonAvailable, fmt.Sprintf("%s: %d of %d replicas available", kind, d.Status.AvailableReplicas, want))
	}
}

// statefulSetState says whether a StatefulSet runs want ready replicas of its current revision.
func statefulSetState(s *appsv1.StatefulSet, want int32) state {
	kind := "StatefulSet " + s.Name
	switch {
	case s.Status.ObservedGeneration < s.Generation:
		return falseState(ragv1.ReasonProgressing, fmt.Sprintf("%s: generation %d not yet observed by the StatefulSet controller", kind, s.Generation))
	case s.Status.UpdateRevision != "" && s.Status.CurrentRevision != s.Status.UpdateRevision:
		return falseState(ragv1.ReasonProgressing, fmt.Sprintf("%s: rolling out revision %s", kind, s.Status.UpdateRevision))
	case s.Status.ReadyReplicas < want:
		return falseState(ragv1.ReasonUnavailable, fmt.Sprintf("%s: %d of %d replicas ready", kind, s.Status.ReadyReplicas, want))
	default:
		return trueState(ragv1.ReasonAvailable, fmt.Sprintf("%s: %d of %d replicas ready", kind, s.Status.ReadyReplicas, want))
	}
}

// componentConditions are the conditions Ready summarises, in display order.
var componentConditions = []string{
	ragv1.ConditionOllamaReady,
	ragv1.ConditionQdrantReady,
	ragv1.ConditionRagServerReady,
	ragv1.ConditionModelsReady,
	ragv1.ConditionCollectionReady,
	ragv1.ConditionNetworkPolicyReady,
}

// readyState is True only when every component condition is True; otherwise its message
// lists the ones that are not, with their reasons.
func readyState(conds []metav1.Condition) state {
	var notReady []string
	for _, t := range componentConditions {
		c := meta.FindStatusCondition(conds, t)
		switch {
		case c == nil:
			notReady = append(notReady, t+" (not yet reported)")
		case c.Status != metav1.ConditionTrue:
			notReady = append(notReady, t+"="+string(c.Status)+" ("+c.Reason+")")
		}
	}
	if len(notReady) == 0 {
		return trueState(ragv1.ReasonAllReady, "all components are ready")
	}
	sort.Strings(notReady)
	return falseState(ragv1.ReasonComponentsNotReady, "not ready: "+strings.Join(notReady, ", "))
}

// setCondition stamps a state on the appliance with its generation. LastTransitionTime only
// moves when the status changes, so a steady state writes nothing.
func setCondition(ra *ragv1.RagAppliance, condType string, s state) {
	meta.SetStatusCondition(&ra.Status.Conditions, metav1.Condition{
		Type:               condType,
		Status:             s.Status,
		Reason:             s.Reason,
		Message:            s.Message,
		ObservedGeneration: ra.Generation,
	})
}

// ollamaSettingsState says whether the image's Ollama honours every declared setting and
// whether one is known to crash it. A risky setting is admitted (the user may know better)
// but never silent.
func ollamaSettingsState(ra *ragv1.RagAppliance, ignored []string) state {
	v := ollamaVersion(ra)
	switch {
	case ra.Spec.Ollama.MultiuserCache && v != nil && v.Less(ollamaversion.MultiuserCacheRemoved):
		return falseState(ragv1.ReasonMultiuserCacheCrashRisk, fmt.Sprintf(
			"spec.ollama.multiuserCache is true on Ollama %s, whose llama.cpp runner aborts (GGML_ASSERT(is_full && \"seq_cp() is only supported for full KV buffers\")) once two requests for one model run in parallel: set it to false (Ollama removed the setting in %s)",
			v, ollamaversion.MultiuserCacheRemoved))
	case ra.Spec.Ollama.MultiuserCache && v == nil:
		return unknownState(ragv1.ReasonMultiuserCacheCrashRisk,
			"spec.ollama.multiuserCache is true and the Ollama version is not known yet (the image tag names none): below 0.30 it aborts the runner under parallel requests")
	case len(ignored) > 0:
		return falseState(ragv1.ReasonSettingsIgnored, "Ollama "+v.String()+" ignores "+joinNames(ignored)+": not rendered")
	case v == nil:
		return unknownState(ragv1.ReasonSettingsHonoured, "the Ollama version is not known yet (the image tag names none)")
	default:
		return trueState(ragv1.ReasonSettingsHonoured, "Ollama "+v.String()+" honours every declared setting")
	}
}

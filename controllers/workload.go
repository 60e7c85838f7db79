package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// workloadState refines a workload's rollout state with why its pods are not running, as the
// scheduler and the kubelet report it in the pods' status: a user reads "Unschedulable: 0/1
// nodes are available: 1 Insufficient nvidia.com/gpu" on the appliance instead of "0 of 1
// replicas available".
func (r *RagApplianceReconciler) workloadState(ctx context.Context, ra *ragv1.RagAppliance, component string, base state) state {
	if base.Status == metav1.ConditionTrue || base.Reason == ragv1.ReasonScaledDown {
		return base
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(ra.Namespace), client.MatchingLabels(selectorLabels(ra, component))); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list pods", "component", component)
		return base
	}
	if st, ok := podsProblem(pods.Items); ok {
		return st
	}
	if len(pods.Items) == 0 && component == componentQdrant {
		// A StatefulSet reports refused pods only as events.
		if msg := r.lastFailedCreate(ctx, ra.Namespace, qdrantName(ra)); msg != "" {
			return falseState(ragv1.ReasonPodRefused, "StatefulSet "+qdrantName(ra)+": FailedCreate: "+msg)
		}
	}
	return base
}

// lastFailedCreate is the newest FailedCreate event's message of a workload, read uncached
// (events are not watched).
func (r *RagApplianceReconciler) lastFailedCreate(ctx context.Context, namespace, name string) string {
	if r.APIReader == nil {
		return ""
	}
	events := &corev1.EventList{}
	if err := r.APIReader.List(ctx, events, client.InNamespace(namespace), client.MatchingFields{
		"involvedObject.name": name, "reason": "FailedCreate",
	}); err != nil {
		return ""
	}
	var newest *corev1.Event
	for i := range events.Items {
		e := &events.Items[i]
		if newest == nil || eventTime(e).After(eventTime(newest)) {
			newest = e
		}
	}
	if newest == nil {
		return ""
	}
	return oneLine(newest.Message)
}

func eventTime(e *corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// podsProblem is the first problem found among pods, in a stable order (by name), as a state.
func podsProblem(pods []corev1.Pod) (state, bool) {
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if st, ok := podProblem(&p); ok {
			return st, true
		}
	}
	return state{}, false
}

func podProblem(p *corev1.Pod) (state, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return falseState(ragv1.ReasonUnschedulable, fmt.Sprintf("pod %s: %s: %s", p.Name, orDefault(c.Reason, "Unschedulable"), strings.TrimSpace(c.Message))), true
		}
	}
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		w := cs.State.Waiting
		if w == nil {
			continue
		}
		switch w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
			return falseState(ragv1.ReasonImagePullFailed, fmt.Sprintf("pod %s container %s: %s: %s", p.Name, cs.Name, w.Reason, oneLine(w.Message))), true
		case "CrashLoopBackOff":
			msg := fmt.Sprintf("pod %s container %s: CrashLoopBackOff (%d restarts)", p.Name, cs.Name, cs.RestartCount)
			if t := cs.LastTerminationState.Terminated; t != nil {
				msg += fmt.Sprintf("; last exit code %d (%s)", t.ExitCode, t.Reason)
				if t.Message != "" {
					msg += ": " + oneLine(t.Message)
				}
			}
			return falseState(ragv1.ReasonCrashLooping, msg), true
		case "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
			return falseState(ragv1.ReasonContainerConfigError, fmt.Sprintf("pod %s container %s: %s: %s", p.Name, cs.Name, w.Reason, oneLine(w.Message))), true
		}
	}
	return state{}, false
}

// deploymentRefused reports a Deployment whose ReplicaSet cannot create pods (admission
// refused them: Pod Security, a quota, a missing PriorityClass or RuntimeClass).
func deploymentRefused(d *appsv1.Deployment) (state, bool) {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return falseState(ragv1.ReasonPodRefused, fmt.Sprintf("Deployment %s: %s: %s", d.Name, c.Reason, oneLine(c.Message))), true
		}
	}
	return state{}, false
}

// oneLine keeps a message on one line and bounded: conditions are read in a terminal.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 512 {
		s = s[:509] + "..."
	}
	return s
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

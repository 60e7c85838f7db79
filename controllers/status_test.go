package controllers

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

func TestDeploymentState(t *testing.T) {
	dep := func(gen, observed int64, updated, available int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "x", Generation: gen},
			Status:     appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, AvailableReplicas: available},
		}
	}
	tests := []struct {
		name       string
		d          *appsv1.Deployment
		want       int32
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"new, not observed", dep(1, 0, 0, 0), 1, metav1.ConditionFalse, ragv1.ReasonProgressing},
		{"observed, not updated", dep(2, 2, 0, 1), 1, metav1.ConditionFalse, ragv1.ReasonProgressing},
		{"updated, unavailable", dep(2, 2, 1, 0), 1, metav1.ConditionFalse, ragv1.ReasonUnavailable},
		{"available", dep(2, 2, 1, 1), 1, metav1.ConditionTrue, ragv1.ReasonAvailable},
		{"old generation available", dep(3, 2, 1, 1), 1, metav1.ConditionFalse, ragv1.ReasonProgressing},
		{"scaled to zero", dep(1, 1, 0, 0), 0, metav1.ConditionFalse, ragv1.ReasonScaledDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := deploymentState(tt.d, tt.want)
			if s.Status != tt.wantStatus || s.Reason != tt.wantReason {
				t.Fatalf("got %s/%s (%s), want %s/%s", s.Status, s.Reason, s.Message, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestStatefulSetState(t *testing.T) {
	sts := func(gen, observed int64, ready int32, current, update string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "q", Generation: gen},
			Status:     appsv1.StatefulSetStatus{ObservedGeneration: observed, ReadyReplicas: ready, CurrentRevision: current, UpdateRevision: update},
		}
	}
	tests := []struct {
		name       string
		s          *appsv1.StatefulSet
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"not observed", sts(1, 0, 0, "", ""), metav1.ConditionFalse, ragv1.ReasonProgressing},
		{"rolling", sts(2, 2, 1, "a", "b"), metav1.ConditionFalse, ragv1.ReasonProgressing},
		{"not ready", sts(1, 1, 0, "a", "a"), metav1.ConditionFalse, ragv1.ReasonUnavailable},
		{"ready", sts(1, 1, 1, "a", "a"), metav1.ConditionTrue, ragv1.ReasonAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := statefulSetState(tt.s, 1)
			if s.Status != tt.wantStatus || s.Reason != tt.wantReason {
				t.Fatalf("got %s/%s, want %s/%s", s.Status, s.Reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestReadyOnlyWhenAllComponentsAre(t *testing.T) {
	all := func(except string, status metav1.ConditionStatus) []metav1.Condition {
		var out []metav1.Condition
		for _, c := range componentConditions {
			st := metav1.ConditionTrue
			if c == except {
				st = status
			}
			out = append(out, metav1.Condition{Type: c, Status: st, Reason: "R"})
		}
		return out
	}
	if s := readyState(all("", "")); s.Status != metav1.ConditionTrue || s.Reason != ragv1.ReasonAllReady {
		t.Fatalf("all true → %+v", s)
	}
	for _, c := range componentConditions {
		for _, st := range []metav1.ConditionStatus{metav1.ConditionFalse, metav1.ConditionUnknown} {
			s := readyState(all(c, st))
			if s.Status != metav1.ConditionFalse || !strings.Contains(s.Message, c) {
				t.Errorf("%s=%s → %+v: Ready must be False and name it", c, st, s)
			}
		}
	}
	if s := readyState(nil); s.Status != metav1.ConditionFalse {
		t.Fatalf("no conditions → %+v", s)
	}
}

func TestSetConditionKeepsTransitionTimeAndStampsGeneration(t *testing.T) {
	ra := &ragv1.RagAppliance{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
	setCondition(ra, ragv1.ConditionOllamaReady, trueState("Available", "ok"))
	first := ra.Status.Conditions[0].LastTransitionTime
	ra.Generation = 5
	setCondition(ra, ragv1.ConditionOllamaReady, trueState("Available", "ok"))
	c := ra.Status.Conditions[0]
	if c.ObservedGeneration != 5 || !c.LastTransitionTime.Equal(&first) {
		t.Fatalf("got %+v", c)
	}
}

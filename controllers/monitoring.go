package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// podMonitorGVK is the Prometheus Operator's PodMonitor; the operator does not import its
// types (or need its CRDs) and applies it as an unstructured object.
var podMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}

// ollamaExporterContainer turns Ollama's /api/ps, /api/tags and /api/version into Prometheus
// metrics beside it (Ollama has no /metrics: ollama/ollama#3144). It is the RAG server's
// binary, so no further image is pulled; it reaches Ollama over the pod's loopback.
func ollamaExporterContainer(ra *ragv1.RagAppliance) corev1.Container {
	args := []string{"ollama-exporter",
		"--ollama-url=http://127.0.0.1:" + itoa(ollamaPort),
		"--listen=:" + itoa(ollamaExporterPort)}
	var declared []string
	for _, m := range ra.Spec.Models {
		declared = append(declared, m.Name)
	}
	if len(declared) > 0 {
		// The exporter reports these as declared, so "a declared model is not resident" is an
		// alert Prometheus can evaluate.
		args = append(args, "--declared-model="+strings.Join(declared, ","))
	}
	return corev1.Container{
		Name:  "ollama-exporter",
		Image: ra.Spec.RagServer.Image,
		Args:  args,
		Ports: []corev1.ContainerPort{{Name: "ollama-metrics", ContainerPort: ollamaExporterPort, Protocol: corev1.ProtocolTCP}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		SecurityContext: restrictedContainer(),
	}
}

// applianceMonitor is the PodMonitor that scrapes the RAG server's metrics port and the Ollama
// exporter (nil unless spec.monitoring.podMonitor). One object selects every pod of the
// appliance; an endpoint whose port a pod lacks does not apply to it.
func applianceMonitor(ra *ragv1.RagAppliance) *unstructured.Unstructured {
	if !ra.Spec.Monitoring.PodMonitor {
		return nil
	}
	endpoints := []any{map[string]any{"port": "metrics", "path": "/metrics"}}
	if ra.Spec.Monitoring.OllamaExporter {
		endpoints = append(endpoints, map[string]any{"port": "ollama-metrics", "path": "/metrics"})
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{
				"app.kubernetes.io/instance": ra.Name,
				ManagedByLabel:               ManagedByValue,
			}},
			"podMetricsEndpoints": endpoints,
		},
	}}
	u.SetGroupVersionKind(podMonitorGVK)
	om := objectMeta(ra, ra.Name, "monitoring")
	u.SetName(om.Name)
	u.SetNamespace(om.Namespace)
	u.SetLabels(om.Labels)
	u.SetOwnerReferences(om.OwnerReferences)
	return u
}

// reconcileMonitoring applies the declared PodMonitor or removes one this manager applied
// earlier (uncached, like the HTTPRoute: the kind may not be installed). A cluster without the
// Prometheus Operator gets a condition that says so, not a silent nothing.
func (r *RagApplianceReconciler) reconcileMonitoring(ctx context.Context, s *scope) (subResult, error) {
	ra := s.ra
	key := client.ObjectKeyFromObject(ra)
	if pm := applianceMonitor(ra); pm != nil {
		if err := r.applier.apply(ctx, pm); err != nil {
			if meta.IsNoMatchError(err) || strings.Contains(err.Error(), "no matches for kind") {
				err = fmt.Errorf("spec.monitoring.podMonitor: the Prometheus Operator's PodMonitor (%s) is not installed in this cluster", podMonitorGVK.GroupVersion())
				setCondition(ra, ragv1.ConditionMonitoringReady, falseState(ragv1.ReasonApplyFailed, err.Error()))
				return subResult{requeueAfter: secretResync}, nil
			}
			setCondition(ra, ragv1.ConditionMonitoringReady, falseState(ragv1.ReasonApplyFailed, err.Error()))
			return subResult{}, err
		}
		r.monitors.Store(key, true)
		setCondition(ra, ragv1.ConditionMonitoringReady, trueState(ragv1.ReasonPodMonitorApplied, "PodMonitor "+pm.GetName()+" scrapes the RAG server"+exporterNote(ra)))
		return subResult{}, nil
	}
	if _, had := r.monitors.Load(key); had && r.APIReader != nil {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(podMonitorGVK)
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ra.Namespace, Name: ra.Name}, live)
		if err == nil && metav1.IsControlledBy(live, ra) {
			err = client.IgnoreNotFound(r.Delete(ctx, live))
		}
		if err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
			return subResult{}, err
		}
		r.monitors.Delete(key)
	}
	setCondition(ra, ragv1.ConditionMonitoringReady, trueState(ragv1.ReasonDisabled, "spec.monitoring.podMonitor is false: metrics are served on the pods' metrics ports"+exporterNote(ra)))
	return subResult{}, nil
}

func exporterNote(ra *ragv1.RagAppliance) string {
	if ra.Spec.Monitoring.OllamaExporter {
		return " and the Ollama exporter (port " + itoa(ollamaExporterPort) + ")"
	}
	return ""
}

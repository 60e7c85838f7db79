package controllers

import (
	corev1 "k8s.io/api/core/v1"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// placementFor is the placement of one component's pods: the common spec.placement with the
// component's override laid over it field by field (an override's list replaces, not merges).
func placementFor(ra *ragv1.RagAppliance, component string) ragv1.PodPlacement {
	p := ra.Spec.Placement
	out := *p.PodPlacement.DeepCopy()
	var o *ragv1.PodPlacement
	switch component {
	case componentOllama:
		o = p.Ollama
	case componentQdrant:
		o = p.Qdrant
	case componentRagServer:
		o = p.RagServer
	case componentModelSync:
		o = p.ModelJobs
	}
	if o == nil {
		return out
	}
	o = o.DeepCopy()
	if o.NodeSelector != nil {
		out.NodeSelector = o.NodeSelector
	}
	if o.Tolerations != nil {
		out.Tolerations = o.Tolerations
	}
	if o.Affinity != nil {
		out.Affinity = o.Affinity
	}
	if o.TopologySpreadConstraints != nil {
		out.TopologySpreadConstraints = o.TopologySpreadConstraints
	}
	if o.PriorityClassName != "" {
		out.PriorityClassName = o.PriorityClassName
	}
	if o.RuntimeClassName != nil {
		out.RuntimeClassName = o.RuntimeClassName
	}
	return out
}

// place sets a pod spec's scheduling fields from the component's placement.
func place(spec *corev1.PodSpec, ra *ragv1.RagAppliance, component string) {
	p := placementFor(ra, component)
	spec.NodeSelector = p.NodeSelector
	spec.Tolerations = p.Tolerations
	spec.Affinity = p.Affinity
	spec.TopologySpreadConstraints = p.TopologySpreadConstraints
	spec.PriorityClassName = p.PriorityClassName
	spec.RuntimeClassName = p.RuntimeClassName
}

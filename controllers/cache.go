package controllers

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ManagedByLabel and ManagedByValue mark every object the operator creates (labels()) and every
// pod template it renders, so the pods of its Deployments, StatefulSets and Jobs carry them too.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "rag-operator"
)

// ManagedBySelector selects the objects the operator created.
func ManagedBySelector() klabels.Selector {
	req, err := klabels.NewRequirement(ManagedByLabel, selection.Equals, []string{ManagedByValue})
	if err != nil {
		panic(err) // constant input
	}
	return klabels.NewSelector().Add(*req)
}

// ScopedKinds are the kinds whose informers CacheOptions restricts to the operator's own objects:
// every kind it owns, and the pods of those children (read to explain why one does not run).
func ScopedKinds() []client.Object {
	return []client.Object{
		&appsv1.Deployment{},
		&appsv1.StatefulSet{},
		&corev1.Service{},
		&corev1.ConfigMap{},
		&corev1.PersistentVolumeClaim{},
		&batchv1.Job{},
		&corev1.Pod{},
		&networkingv1.NetworkPolicy{},
		&networkingv1.Ingress{},
		&policyv1.PodDisruptionBudget{},
	}
}

// CacheOptions are the manager's cache options. Without them controller-runtime would cache
// every ConfigMap, Service, PVC, Deployment, StatefulSet, Job and Pod in the cluster; with them
// each of those informers lists and watches only app.kubernetes.io/managed-by=rag-operator, so
// the manager's memory follows the number of appliances, not the size of the cluster.
//
// watchNamespaces, when not empty, confines every namespaced informer (RagAppliances included)
// to those namespaces, so the manager needs only namespaced RBAC there. Cluster-scoped kinds
// (Nodes, read for the memory budget) are not affected.
//
// Reading a scoped kind through the cached client only ever sees labelled objects: a child
// that lost its label (or an unrelated object with a child's name) reads as not found, and the
// next server-side apply puts the label back. Secrets are not here because they are never
// cached (read by name through the API reader).
//
// Events are not scoped here: they carry no labels of ours. The operator writes them; a reader
// of an object's Events should list them through the API reader with a field selector
// (involvedObject.uid / regarding.uid) rather than start a cluster-wide Event informer.
func CacheOptions(watchNamespaces []string) cache.Options {
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{}}
	sel := ManagedBySelector()
	for _, obj := range ScopedKinds() {
		opts.ByObject[obj] = cache.ByObject{Label: sel}
	}
	if namespaces := nonEmpty(watchNamespaces); len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// nonEmpty drops blank entries (a trailing comma in --watch-namespaces).
func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

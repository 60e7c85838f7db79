package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// applier server-side applies typed desired objects under the single field owner, with forced
// ownership. The desired object is never compared with the live, defaulted one (that is how
// update hot-loops start): the API server merges. To keep a steady state free of API writes,
// it remembers, per object, the hash of what it applied and the resourceVersion the server
// answered; while the cached object still has that resourceVersion and the desired hash is
// unchanged, nobody has touched the object since, and the apply is skipped. Any change by
// anyone (an edit, a status update) moves the resourceVersion and the next pass applies again.
type applier struct {
	client  client.Client
	mu      sync.Mutex
	last    map[string]appliedState
	applies int // apply requests sent, for the steady-state test and benchmark
}

type appliedState struct {
	resourceVersion string
	hash            string
}

func newApplier(c client.Client) *applier {
	return &applier{client: c, last: map[string]appliedState{}}
}

// apply makes obj the applied state and leaves the server's view of it (status included) in obj.
func (a *applier) apply(ctx context.Context, obj client.Object) error {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	delete(raw, "status")
	dropNullTimestamps(raw)
	u := &unstructured.Unstructured{Object: raw}
	intent, err := json.Marshal(raw) // map keys are sorted: stable
	if err != nil {
		return err
	}
	hash := hashOf(intent)
	key := u.GetAPIVersion() + "/" + u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()

	live := obj.DeepCopyObject().(client.Object)
	if err := a.client.Get(ctx, client.ObjectKeyFromObject(obj), live); err == nil && a.unchanged(key, live.GetResourceVersion(), hash) {
		return copyInto(live, obj)
	}

	if err := a.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	a.mu.Lock()
	a.last[key] = appliedState{resourceVersion: u.GetResourceVersion(), hash: hash}
	a.applies++
	a.mu.Unlock()
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj)
}

// count is the number of apply requests sent so far.
func (a *applier) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applies
}

func (a *applier) unchanged(key, resourceVersion, hash string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.last[key]
	return ok && s.resourceVersion == resourceVersion && s.hash == hash
}

func copyInto(src, dst client.Object) error {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(src)
	if err != nil {
		return err
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(raw, dst)
}

// dropNullTimestamps removes the "creationTimestamp: null" that typed objects serialise in
// their metadata (and pod template metadata), so it is not part of the applied intent.
func dropNullTimestamps(m map[string]any) {
	for k, v := range m {
		switch t := v.(type) {
		case nil:
			if k == "creationTimestamp" {
				delete(m, k)
			}
		case map[string]any:
			dropNullTimestamps(t)
		case []any:
			for _, e := range t {
				if em, ok := e.(map[string]any); ok {
					dropNullTimestamps(em)
				}
			}
		}
	}
}

package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// applyObject server-side applies a typed desired object under the single field owner, with
// forced ownership, and decodes the server's answer (including status) back into obj.
// The desired object is never compared with the live, defaulted one: the API server merges
// and a no-op apply changes nothing (no new resourceVersion).
func applyObject(ctx context.Context, c client.Client, obj client.Object) error {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	delete(raw, "status")
	dropNullTimestamps(raw)
	u := &unstructured.Unstructured{Object: raw}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj)
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

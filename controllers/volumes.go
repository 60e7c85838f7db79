package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// expandQdrantClaims grows Qdrant's volumes when spec.qdrant.storage.size grew. A StatefulSet's
// volumeClaimTemplates are immutable, so this is ECK's way (pvc_expansion.go): check the
// StorageClass allows expansion, patch every existing claim to the new size, then delete the
// StatefulSet with orphan propagation (its pods keep running) so this pass's apply creates it
// again with the new template. recreating is true when the StatefulSet was just deleted: the
// caller applies it on the next pass, once the deletion has gone through.
func (r *RagApplianceReconciler) expandQdrantClaims(ctx context.Context, ra *ragv1.RagAppliance, desired *appsv1.StatefulSet) (note string, recreating bool, err error) {
	live := &appsv1.StatefulSet{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(desired), live); err != nil {
		return "", false, client.IgnoreNotFound(err)
	}
	if live.DeletionTimestamp != nil {
		return "waiting for StatefulSet " + live.Name + " to be deleted before it is created again with larger volumes", true, nil
	}
	want := desired.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	var current *corev1.PersistentVolumeClaim
	for i := range live.Spec.VolumeClaimTemplates {
		if live.Spec.VolumeClaimTemplates[i].Name == desired.Spec.VolumeClaimTemplates[0].Name {
			current = &live.Spec.VolumeClaimTemplates[i]
		}
	}
	if current == nil {
		return "", false, nil
	}
	have := current.Spec.Resources.Requests[corev1.ResourceStorage]
	if want.Cmp(have) <= 0 {
		return "", false, nil
	}
	if err := r.checkExpandable(ctx, current.Spec.StorageClassName); err != nil {
		return "", false, fmt.Errorf("spec.qdrant.storage.size %s > %s: %w", want.String(), have.String(), err)
	}
	replicas := int32(1)
	if live.Spec.Replicas != nil {
		replicas = *live.Spec.Replicas
	}
	for i := int32(0); i < replicas; i++ {
		pvc := &corev1.PersistentVolumeClaim{}
		key := client.ObjectKey{Namespace: ra.Namespace, Name: fmt.Sprintf("%s-%s-%d", current.Name, live.Name, i)}
		if err := r.Get(ctx, key, pvc); err != nil {
			if apierrors.IsNotFound(err) {
				continue // not created yet: the new template sizes it
			}
			return "", false, err
		}
		if size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; size.Cmp(want) >= 0 {
			continue
		}
		patch := client.MergeFrom(pvc.DeepCopy())
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = want
		if err := r.Patch(ctx, pvc, patch); err != nil {
			return "", false, fmt.Errorf("expand PersistentVolumeClaim %s to %s: %w", key.Name, want.String(), err)
		}
	}
	if err := r.Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationOrphan)); err != nil && !apierrors.IsNotFound(err) {
		return "", false, fmt.Errorf("delete StatefulSet %s (orphaning its pods) to grow its volume claim template: %w", live.Name, err)
	}
	r.event(ra, corev1.EventTypeNormal, ragv1.ReasonVolumeExpanding, "ExpandVolume",
		fmt.Sprintf("Growing Qdrant's volume claims from %s to %s: claims patched, StatefulSet %s re-created with its pods kept", have.String(), want.String(), live.Name))
	return "volume claims growing from " + have.String() + " to " + want.String(), true, nil
}

// checkExpandable refuses when the claim's StorageClass (the default one when unnamed) does not
// allow volume expansion.
func (r *RagApplianceReconciler) checkExpandable(ctx context.Context, className *string) error {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	var sc *storagev1.StorageClass
	if className != nil && *className != "" {
		sc = &storagev1.StorageClass{}
		if err := reader.Get(ctx, client.ObjectKey{Name: *className}, sc); err != nil {
			return fmt.Errorf("read StorageClass %s: %w", *className, err)
		}
	} else {
		// The default class is the one the claim got; reading it needs list, which the operator
		// does not have: let the API server judge when the claim is patched.
		return nil
	}
	if sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
		return fmt.Errorf("StorageClass %s does not allow volume expansion (allowVolumeExpansion is not true)", sc.Name)
	}
	return nil
}

package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

func storageClass(t *testing.T, name string, expandable bool) {
	t.Helper()
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/disk", AllowVolumeExpansion: ptr.To(expandable)}
	if err := k8s.Create(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), sc) })
}

// boundClaim stands in for the claim the StatefulSet controller would create, bound to a volume.
func boundClaim(t *testing.T, sts *appsv1.StatefulSet, class, size string) *corev1.PersistentVolumeClaim {
	t.Helper()
	vct := sts.Spec.VolumeClaimTemplates[0]
	pvc := &corev1.PersistentVolumeClaim{
		// Named and labelled as the StatefulSet controller names and labels them.
		ObjectMeta: metav1.ObjectMeta{Namespace: sts.Namespace, Name: vct.Name + "-" + sts.Name + "-0", Labels: vct.Labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(class),
			VolumeName:       "pv-" + sts.Namespace + "-" + sts.Name,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	if err := k8s.Create(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}
	if err := k8s.Status().Update(context.Background(), pvc); err != nil {
		t.Fatal(err)
	}
	return pvc
}

// TestGrowingQdrantStorageExpandsItsClaims: growing spec.qdrant.storage.size patches the
// existing claim and re-creates the StatefulSet (orphaning its pod) with the larger template.
func TestGrowingQdrantStorageExpandsItsClaims(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	class := "expandable-" + ns
	storageClass(t, class, true)
	u, err := createManifest(ns, manifest("grow", fmt.Sprintf("qdrant: {storage: {size: 1Gi, storageClassName: %s}}", class)))
	if err != nil {
		t.Fatal(err)
	}
	ra := &ragv1.RagAppliance{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, ra)
	children := waitForChildren(t, ra)
	sts := children["qdrant StatefulSet"].(*appsv1.StatefulSet)
	oldUID := sts.UID
	pvc := boundClaim(t, sts, class, "1Gi")

	patchSpec(t, ra, `{"spec":{"qdrant":{"storage":{"size":"2Gi"}}}}`)
	eventually(t, settle, func() error {
		live := &appsv1.StatefulSet{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(sts), live); err != nil {
			return err
		}
		if got := live.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "2Gi" || live.UID == oldUID {
			return fmt.Errorf("StatefulSet template %s (uid changed: %v)", got.String(), live.UID != oldUID)
		}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return err
		}
		if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "2Gi" {
			return fmt.Errorf("claim still requests %s", got.String())
		}
		return nil
	})
}

// TestAFailingChildDoesNotFreezeTheOthers: when one child cannot be applied (here: growing a
// claim whose StorageClass does not allow expansion), the condition says why, and the
// component's other children keep following the spec.
func TestAFailingChildDoesNotFreezeTheOthers(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	class := "fixed-" + ns
	storageClass(t, class, false)
	u, err := createManifest(ns, manifest("frozen", fmt.Sprintf("ollama: {storage: {size: 10Gi, storageClassName: %s}}\nqdrant: {storage: {size: 1Gi, storageClassName: %s}}", class, class)))
	if err != nil {
		t.Fatal(err)
	}
	ra := &ragv1.RagAppliance{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, ra)
	children := waitForChildren(t, ra)
	sts := children["qdrant StatefulSet"].(*appsv1.StatefulSet)
	boundClaim(t, sts, class, "1Gi")
	// The Ollama model store is bound too, so the API server judges the resize by its class.
	models := children["ollama models PVC"].(*corev1.PersistentVolumeClaim)
	_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(models), models)
	models.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}}
	if err := k8s.Status().Update(context.Background(), models); err != nil {
		t.Fatal(err)
	}

	patchSpec(t, ra, `{"spec":{"ollama":{"storage":{"size":"20Gi"},"numParallel":6},"qdrant":{"storage":{"size":"2Gi"}}}}`)
	// Failing passes do not stamp observedGeneration: read the conditions themselves.
	eventually(t, settle, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ra), ra); err != nil {
			return err
		}
		q := meta.FindStatusCondition(ra.Status.Conditions, ragv1.ConditionQdrantReady)
		if q == nil || q.Reason != ragv1.ReasonApplyFailed || !strings.Contains(q.Message, "does not allow volume expansion") {
			return fmt.Errorf("QdrantReady %+v", q)
		}
		o := meta.FindStatusCondition(ra.Status.Conditions, ragv1.ConditionOllamaReady)
		if o == nil || o.Reason != ragv1.ReasonApplyFailed || !strings.Contains(o.Message, "PersistentVolumeClaim") {
			return fmt.Errorf("OllamaReady %+v", o)
		}
		return nil
	})
	// The Ollama Deployment after the refused claim still got the new setting.
	eventually(t, settle, func() error {
		dep := &appsv1.Deployment{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(children["ollama Deployment"]), dep); err != nil {
			return err
		}
		if env := envMap(dep.Spec.Template.Spec.Containers[0].Env); env["OLLAMA_NUM_PARALLEL"] != "6" {
			return fmt.Errorf("OLLAMA_NUM_PARALLEL = %q: the Deployment stopped following the spec", env["OLLAMA_NUM_PARALLEL"])
		}
		return nil
	})
}

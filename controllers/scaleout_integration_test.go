package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// TestScaleOutSample: the scale-out sample on a real API server. Without its database Secret
// the RAG server is reported (not crash-looping); with it, three replicas roll without a pause
// behind a PodDisruptionBudget, Qdrant runs three peers in distributed mode behind its own, a
// rotated database password rolls the replicas, and scaling the RAG server back to one
// removes its budget.
func TestScaleOutSample(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	ctx := context.Background()
	ra := applySample(t, ns, "rag_v1alpha1_ragappliance_scale_out.yaml")
	key := client.ObjectKeyFromObject(ra)

	// The Secret does not exist yet: a condition names it, and no Deployment is applied that
	// could only fail to start.
	waitForStatus(t, ra, func(got *ragv1.RagAppliance) error {
		if err := conditionIs(ragv1.ConditionRagServerReady, metav1.ConditionFalse, ragv1.ReasonSecretMissing)(got); err != nil {
			return err
		}
		return nil
	})
	got := &ragv1.RagAppliance{}
	_ = k8s.Get(ctx, key, got)
	if c := findCondition(got, ragv1.ConditionRagServerReady); !strings.Contains(c.Message, "rag-db-app") {
		t.Errorf("SecretMissing does not name the Secret: %q", c.Message)
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rag-db-app"},
		StringData: map[string]string{"uri": "postgresql://app:one@rag-db-rw:5432/app?sslmode=require"}}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	reconcileNow(t, key)

	dep := &appsv1.Deployment{}
	ragPDB, qdrantPDB := &policyv1.PodDisruptionBudget{}, &policyv1.PodDisruptionBudget{}
	sts := &appsv1.StatefulSet{}
	eventually(t, settle, func() error {
		for _, o := range []struct {
			name string
			obj  client.Object
		}{{ragServerName(ra), dep}, {ragServerName(ra), ragPDB}, {qdrantName(ra), qdrantPDB}, {qdrantName(ra), sts}} {
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.name}, o.obj); err != nil {
				return fmt.Errorf("%T %s: %w", o.obj, o.name, err)
			}
		}
		return nil
	})
	if *dep.Spec.Replicas != 3 || dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("RAG server: replicas %d, strategy %+v; want 3 rolling with none unavailable", *dep.Spec.Replicas, dep.Spec.Strategy)
	}
	if len(dep.Spec.Template.Spec.TopologySpreadConstraints) != 1 {
		t.Errorf("RAG server replicas not spread: %+v", dep.Spec.Template.Spec.TopologySpreadConstraints)
	}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("a RAG server on PostgreSQL mounts claim %s", v.PersistentVolumeClaim.ClaimName)
		}
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ragServerDataPVC(ra)}, &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Errorf("a RAG server on PostgreSQL got a data claim: %v", err)
	}
	if ragPDB.Spec.MaxUnavailable.IntValue() != 1 || qdrantPDB.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("budgets: rag-server %v, qdrant %v", ragPDB.Spec.MaxUnavailable, qdrantPDB.Spec.MaxUnavailable)
	}
	if *sts.Spec.Replicas != 3 || envMap(sts.Spec.Template.Spec.Containers[0].Env)["QDRANT__CLUSTER__ENABLED"] != "true" {
		t.Errorf("Qdrant: replicas %d, env %v; want 3 peers in distributed mode", *sts.Spec.Replicas, envMap(sts.Spec.Template.Spec.Containers[0].Env))
	}

	// A rotated password (same Secret, new value) rolls the replicas.
	before := dep.Spec.Template.Annotations[SecretHashAnnotation]
	secret.StringData = map[string]string{"uri": "postgresql://app:two@rag-db-rw:5432/app?sslmode=require"}
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	reconcileNow(t, key)
	eventually(t, settle, func() error {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(dep), dep)
		if dep.Spec.Template.Annotations[SecretHashAnnotation] == before {
			return fmt.Errorf("secret hash unchanged after the password rotated")
		}
		return nil
	})

	// Back to one replica: the budget would only block drains, so it goes.
	patchSpec(t, ra, `{"spec":{"ragServer":{"replicas":1}}}`)
	eventually(t, settle, func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(ragPDB), &policyv1.PodDisruptionBudget{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("rag-server PodDisruptionBudget still there: %v", err)
		}
		return nil
	})
}

func findCondition(ra *ragv1.RagAppliance, condType string) metav1.Condition {
	for _, c := range ra.Status.Conditions {
		if c.Type == condType {
			return c
		}
	}
	return metav1.Condition{}
}

// reconcileNow runs one pass directly: Secrets are not watched (the periodic pass picks up a
// change within secretResync), so a test does not wait a minute for it.
func reconcileNow(t *testing.T, key client.ObjectKey) {
	t.Helper()
	if _, err := reconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Logf("reconcile: %v", err)
	}
}

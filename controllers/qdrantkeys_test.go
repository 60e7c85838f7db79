package controllers

import (
	"context"
	"fmt"
	"testing"

	"github.com/qdrant/go-client/qdrant"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// TestQdrantKeyGeneratedAndRotationRollsPods: without a declared key the operator generates
// one (and a read-only key) once; Qdrant and the RAG server read them from the Secret, and
// changing a key's value (not the Secret's name) rolls both.
func TestQdrantKeyGeneratedAndRotationRollsPods(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	ra := applySample(t, ns, "rag_v1alpha1_ragappliance_minimal.yaml")
	children := waitForChildren(t, ra)
	secret := &corev1.Secret{}
	eventually(t, settle, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: generatedQdrantKeysSecret(ra)}, secret)
	})
	if len(secret.Data[qdrantKeyField]) < 32 || len(secret.Data[qdrantReadOnlyKeyField]) < 32 {
		t.Fatalf("generated keys too short: %d, %d bytes", len(secret.Data[qdrantKeyField]), len(secret.Data[qdrantReadOnlyKeyField]))
	}
	sts := children["qdrant StatefulSet"].(*appsv1.StatefulSet)
	rag := children["rag-server Deployment"].(*appsv1.Deployment)
	env := map[string]*corev1.EnvVarSource{}
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.ValueFrom
	}
	if ref := env["QDRANT__SERVICE__API_KEY"]; ref == nil || ref.SecretKeyRef.Name != secret.Name {
		t.Errorf("Qdrant's API key does not come from %s: %+v", secret.Name, ref)
	}
	if env["QDRANT__SERVICE__READ_ONLY_API_KEY"] == nil {
		t.Error("Qdrant has no read-only key")
	}
	hashes := func() (string, string) {
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(sts), sts)
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(rag), rag)
		return sts.Spec.Template.Annotations[SecretHashAnnotation], rag.Spec.Template.Annotations[SecretHashAnnotation]
	}
	q0, r0 := hashes()
	if q0 == "" || q0 != r0 {
		t.Fatalf("secret hash on the pod templates: qdrant %q, rag-server %q", q0, r0)
	}

	// A second pass does not regenerate the key.
	before := string(secret.Data[qdrantKeyField])
	if _, err := reconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ra)}); err != nil {
		t.Fatal(err)
	}
	_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(secret), secret)
	if string(secret.Data[qdrantKeyField]) != before {
		t.Fatal("the generated key changed on a later pass")
	}

	// Rotate: both templates change (the periodic pass picks it up; here it is run at once).
	secret.Data[qdrantKeyField] = []byte("rotated-key-0123456789abcdef0123456789")
	if err := k8s.Update(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, settle, func() error {
		if _, err := reconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ra)}); err != nil {
			return err
		}
		q1, r1 := hashes()
		if q1 == q0 || r1 == r0 || q1 != r1 {
			return fmt.Errorf("after rotation: qdrant %q (was %q), rag-server %q (was %q)", q1, q0, r1, r0)
		}
		return nil
	})

	// A declared Secret without the key is a condition, not a crash loop.
	patchSpec(t, ra, `{"spec":{"qdrant":{"apiKeySecretRef":{"name":"nope","key":"api-key"}}}}`)
	waitForStatus(t, ra, func(got *ragv1.RagAppliance) error {
		for _, c := range got.Status.Conditions {
			if c.Type == ragv1.ConditionQdrantReady && c.Reason == ragv1.ReasonSecretMissing {
				return nil
			}
		}
		return fmt.Errorf("no SecretMissing condition")
	})
}

// TestQdrantClientReplacedOnRotation: one client per appliance; a new key closes the old one.
func TestQdrantClientReplacedOnRotation(t *testing.T) {
	e := &ExternalClients{QdrantAddress: "127.0.0.1:1", SkipQdrantVersionCheck: true}
	ra := &ragv1.RagAppliance{}
	ra.Name, ra.Namespace = "a", "ns"
	first, err := e.Qdrant(ra, "k1")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.Qdrant(ra, "k1")
	if first != again {
		t.Error("the same key must reuse the client")
	}
	if _, err := e.Qdrant(ra, "k2"); err != nil {
		t.Fatal(err)
	}
	if n := e.QdrantClients(); n != 1 {
		t.Errorf("%d clients after a rotation, want 1", n)
	}
	// A closed go-client has no connections left (using it panics).
	closed := func() (yes bool) {
		defer func() { yes = recover() != nil }()
		first.(*qdrant.Client).GetGrpcClient()
		return false
	}()
	if !closed {
		t.Error("the old client was not closed")
	}
}

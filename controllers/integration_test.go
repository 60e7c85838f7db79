package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

const settle = 20 * time.Second

func applySample(t *testing.T, ns, file string) *ragv1.RagAppliance {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	u, err := createManifest(ns, string(data))
	if err != nil {
		t.Fatal(err)
	}
	ra := &ragv1.RagAppliance{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, ra); err != nil {
		t.Fatal(err)
	}
	return ra
}

// childKeys are every object the operator owns for an appliance, by kind.
func childObjects(ra *ragv1.RagAppliance) map[string]client.Object {
	ns := ra.Namespace
	m := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	return map[string]client.Object{
		"ollama Deployment":     &appsv1.Deployment{ObjectMeta: m(ollamaName(ra))},
		"ollama Service":        &corev1.Service{ObjectMeta: m(ollamaName(ra))},
		"ollama models PVC":     &corev1.PersistentVolumeClaim{ObjectMeta: m(ollamaModelsPVC(ra))},
		"qdrant StatefulSet":    &appsv1.StatefulSet{ObjectMeta: m(qdrantName(ra))},
		"qdrant Service":        &corev1.Service{ObjectMeta: m(qdrantName(ra))},
		"qdrant headless":       &corev1.Service{ObjectMeta: m(qdrantHeadless(ra))},
		"rag-server Deployment": &appsv1.Deployment{ObjectMeta: m(ragServerName(ra))},
		"rag-server Service":    &corev1.Service{ObjectMeta: m(ragServerName(ra))},
		"rag-server ConfigMap":  &corev1.ConfigMap{ObjectMeta: m(ragServerName(ra))},
		"rag-server data PVC":   &corev1.PersistentVolumeClaim{ObjectMeta: m(ragServerDataPVC(ra))},
		"rag-server API keys":   &corev1.Secret{ObjectMeta: m(generatedKeysSecret(ra))},
	}
}

func waitForChildren(t *testing.T, ra *ragv1.RagAppliance) map[string]client.Object {
	t.Helper()
	children := childObjects(ra)
	eventually(t, settle, func() error {
		for what, o := range children {
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		return nil
	})
	return children
}

// waitForStatus waits until the appliance's status reflects its current generation.
func waitForStatus(t *testing.T, ra *ragv1.RagAppliance, cond func(*ragv1.RagAppliance) error) *ragv1.RagAppliance {
	t.Helper()
	got := &ragv1.RagAppliance{}
	eventually(t, settle, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ra), got); err != nil {
			return err
		}
		if got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		if cond != nil {
			return cond(got)
		}
		return nil
	})
	return got
}

func conditionIs(condType string, status metav1.ConditionStatus, reason string) func(*ragv1.RagAppliance) error {
	return func(ra *ragv1.RagAppliance) error {
		c := meta.FindStatusCondition(ra.Status.Conditions, condType)
		if c == nil {
			return fmt.Errorf("%s not reported", condType)
		}
		if c.Status != status || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("%s = %s/%s (%s), want %s/%s", condType, c.Status, c.Reason, c.Message, status, reason)
		}
		if c.ObservedGeneration != ra.Generation {
			return fmt.Errorf("%s observedGeneration %d, generation %d", condType, c.ObservedGeneration, ra.Generation)
		}
		return nil
	}
}

// markAvailable plays the Deployment/StatefulSet controllers (envtest runs none): it reports
// the current template as rolled out and available.
func markAvailable(t *testing.T, o client.Object) {
	t.Helper()
	ctx := context.Background()
	eventually(t, settle, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			return err
		}
		switch w := o.(type) {
		case *appsv1.Deployment:
			n := *w.Spec.Replicas
			w.Status = appsv1.DeploymentStatus{ObservedGeneration: w.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		case *appsv1.StatefulSet:
			n := *w.Spec.Replicas
			w.Status = appsv1.StatefulSetStatus{ObservedGeneration: w.Generation, Replicas: n, ReadyReplicas: n, CurrentReplicas: n, UpdatedReplicas: n, AvailableReplicas: n, CurrentRevision: "r1", UpdateRevision: "r1"}
		}
		return k8s.Status().Update(ctx, o)
	})
}

func TestSampleCreatesEveryChildAsSpecified(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	ra := applySample(t, ns, "rag_v1alpha1_ragappliance_minimal.yaml")
	children := waitForChildren(t, ra)

	for what, o := range children {
		refs := o.GetOwnerReferences()
		if what == "rag-server data PVC" {
			// spec.retention Retain (the default): the data outlives the appliance.
			if len(refs) != 0 {
				t.Errorf("%s: owner references %+v, want none under retention Retain", what, refs)
			}
			continue
		}
		if len(refs) != 1 || refs[0].UID != ra.UID || refs[0].Controller == nil || !*refs[0].Controller {
			t.Errorf("%s: owner references %+v, want the appliance as controller", what, refs)
		}
	}

	// The defaults the API server filled in reach the Ollama pod as the guide's override.
	ollama := children["ollama Deployment"].(*appsv1.Deployment)
	env := envMap(ollama.Spec.Template.Spec.Containers[0].Env)
	for name, want := range guideOverride {
		if name == "OLLAMA_MULTIUSER_CACHE" {
			want = "" // off by default (facts.md): not rendered
		}
		if env[name] != want {
			t.Errorf("%s = %q, want the guide's %q", name, env[name], want)
		}
	}
	if got := ollama.Spec.Template.Spec.Containers[0].Resources.Limits[gpuResource]; got.Value() != 1 {
		t.Errorf("GPU limit %s, want 1", got.String())
	}

	rag := children["rag-server Deployment"].(*appsv1.Deployment)
	cm := children["rag-server ConfigMap"].(*corev1.ConfigMap)
	if rag.Spec.Template.Annotations[ConfigHashAnnotation] == "" || !strings.Contains(cm.Data[ragConfigKey], `"embedding": "nomic-embed-rag"`) {
		t.Errorf("rag-server config not rendered: hash %q, config %s", rag.Spec.Template.Annotations[ConfigHashAnnotation], cm.Data[ragConfigKey])
	}
	secret := children["rag-server API keys"].(*corev1.Secret)
	var keys []apiKeyRecord
	if err := json.Unmarshal(secret.Data[ragKeysFileKey], &keys); err != nil || len(keys) != 1 || keys[0].Role != "admin" || len(keys[0].Token) < 40 {
		t.Errorf("generated API key secret: %v %+v", err, keys)
	}

	got := waitForStatus(t, ra, conditionIs(ragv1.ConditionOllamaReady, metav1.ConditionFalse, ragv1.ReasonProgressing))
	if c := meta.FindStatusCondition(got.Status.Conditions, ragv1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("Ready = %+v while nothing is rolled out", c)
	}
	if got.Status.Endpoints.Ollama != "http://rag-ollama."+ns+".svc:11434" {
		t.Errorf("endpoints %+v", got.Status.Endpoints)
	}

	// Rolled-out workloads turn their conditions True.
	markAvailable(t, ollama)
	markAvailable(t, children["qdrant StatefulSet"])
	markAvailable(t, rag)
	for _, c := range []string{ragv1.ConditionOllamaReady, ragv1.ConditionQdrantReady, ragv1.ConditionRagServerReady} {
		waitForStatus(t, ra, conditionIs(c, metav1.ConditionTrue, ragv1.ReasonAvailable))
	}
}

func templateJSON(t *testing.T, o client.Object) string {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
		t.Fatal(err)
	}
	var tpl any
	switch w := o.(type) {
	case *appsv1.Deployment:
		tpl = w.Spec.Template
	case *appsv1.StatefulSet:
		tpl = w.Spec.Template
	case *corev1.ConfigMap:
		tpl = w.Data
	}
	b, _ := json.Marshal(tpl)
	return string(b)
}

func patchSpec(t *testing.T, ra *ragv1.RagAppliance, patch string) {
	t.Helper()
	if err := k8s.Patch(context.Background(), ra.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

func TestChangesRollOnlyTheComponentTheyConcern(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	ra := applySample(t, ns, "rag_v1alpha1_ragappliance_minimal.yaml")
	children := waitForChildren(t, ra)
	ollama, rag, qdrant, cm := children["ollama Deployment"], children["rag-server Deployment"], children["qdrant StatefulSet"], children["rag-server ConfigMap"]
	before := map[string]string{"ollama": templateJSON(t, ollama), "rag": templateJSON(t, rag), "qdrant": templateJSON(t, qdrant), "cm": templateJSON(t, cm)}

	patchSpec(t, ra, `{"spec":{"ollama":{"numParallel":6}}}`)
	eventually(t, settle, func() error {
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(ollama), ollama)
		if v := envMap(ollama.(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Env)["OLLAMA_NUM_PARALLEL"]; v != "6" {
			return fmt.Errorf("OLLAMA_NUM_PARALLEL=%s", v)
		}
		return nil
	})
	waitForStatus(t, ra, nil)
	if templateJSON(t, rag) != before["rag"] || templateJSON(t, cm) != before["cm"] || templateJSON(t, qdrant) != before["qdrant"] {
		t.Fatal("changing numParallel touched the RAG server or Qdrant pod templates")
	}

	afterOllama := templateJSON(t, ollama)
	patchSpec(t, ra, `{"spec":{"ragServer":{"concurrency":{"maxConcurrentProcessing":5}}}}`)
	eventually(t, settle, func() error {
		if templateJSON(t, rag) == before["rag"] {
			return fmt.Errorf("rag-server pod template unchanged")
		}
		return nil
	})
	if !strings.Contains(templateJSON(t, cm), `\"maxConcurrentProcessing\": 5`) {
		t.Errorf("ConfigMap not updated: %s", templateJSON(t, cm))
	}
	waitForStatus(t, ra, nil)
	if templateJSON(t, ollama) != afterOllama || templateJSON(t, qdrant) != before["qdrant"] {
		t.Fatal("changing a RAG limit rolled Ollama or Qdrant")
	}
}

// TestSteadyStateWritesNothing: once converged, further reconciles send no write to the API
// server and no object's resourceVersion moves.
func TestSteadyStateWritesNothing(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	ra := applySample(t, ns, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	children := waitForChildren(t, ra)
	waitForStatus(t, ra, conditionIs(ragv1.ConditionReady, metav1.ConditionFalse, ""))
	time.Sleep(time.Second) // let the watch events of our own writes arrive

	versions := func() map[string]string {
		v := map[string]string{}
		for what, o := range children {
			_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o)
			v[what] = o.GetResourceVersion()
		}
		got := &ragv1.RagAppliance{}
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(ra), got)
		v["appliance"] = got.ResourceVersion
		return v
	}
	start := versions()
	applies := reconciler.applier.count()
	for range 5 {
		if _, err := reconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ra)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // a window for any asynchronous write to show
	if n := reconciler.applier.count() - applies; n != 0 {
		t.Errorf("%d apply requests in 5 steady-state reconciles, want 0", n)
	}
	for what, rv := range versions() {
		if rv != start[what] {
			t.Errorf("%s resourceVersion moved %s → %s in steady state", what, start[what], rv)
		}
	}
}

// TestDeletingTheApplianceCollectsChildren: every child goes with the appliance; the data
// volumes follow spec.retention (Retain keeps the RAG server's volume and Qdrant's claims, Delete
// removes both).
func TestDeletingTheApplianceCollectsChildren(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	ra := applySample(t, ns, "rag_v1alpha1_ragappliance_minimal.yaml")
	children := waitForChildren(t, ra)
	pvc := children["rag-server data PVC"]
	delete(children, "rag-server data PVC")
	sts := children["qdrant StatefulSet"].(*appsv1.StatefulSet)
	if p := sts.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("Qdrant claims under Retain: %+v", p)
	}
	if err := k8s.Delete(context.Background(), ra); err != nil {
		t.Fatal(err)
	}
	waitGone(t, children)
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pvc), pvc); err != nil || pvc.GetDeletionTimestamp() != nil {
		t.Errorf("retention Retain: the RAG server's volume must stay, got %v", err)
	}

	// retention Delete: the volume is owned, and Qdrant's claims are deleted with the StatefulSet.
	u, err := createManifest(ns, manifest("deleting", "retention: Delete"))
	if err != nil {
		t.Fatal(err)
	}
	ra = &ragv1.RagAppliance{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, ra)
	children = waitForChildren(t, ra)
	sts = children["qdrant StatefulSet"].(*appsv1.StatefulSet)
	if p := sts.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenDeleted != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		t.Errorf("Qdrant claims under Delete: %+v", p)
	}
	if err := k8s.Delete(context.Background(), ra); err != nil {
		t.Fatal(err)
	}
	waitGone(t, children)
}

func waitGone(t *testing.T, children map[string]client.Object) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		for what, o := range children {
			err := k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o)
			if err == nil && o.GetDeletionTimestamp() == nil {
				return fmt.Errorf("%s still exists", what)
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		return nil
	})
}

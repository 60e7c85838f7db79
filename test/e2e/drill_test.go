package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// testOperatorKilled is the operator fault drill (docs/reliability.md): a changed spec that
// rolls two components (the RAG server's limits and Ollama's slots) is applied, the manager is
// killed with SIGKILL as soon as the rollout has begun (the first child changed), and started
// again. It must take the Lease over from its dead self, finish the rollout from what it finds,
// and leave nothing duplicated, nothing re-run and no volume replaced.
func testOperatorKilled(ctx context.Context, t *testing.T, e *env) {
	ra := getAppliance(ctx, t, e)
	cm := &corev1.ConfigMap{}
	cmKey := client.ObjectKey{Namespace: sampleNS, Name: ra.Name + "-rag-server"}
	if err := e.c.Get(ctx, cmKey, cm); err != nil {
		t.Fatal(err)
	}
	before := cm.Data["config.json"]
	claims := claimUIDs(ctx, t, e, ra.Name)
	jobsBefore := modelJobCount(ctx, t, e, ra.Name)

	patch := []byte(`{"spec":{"ragServer":{"concurrency":{"maxConcurrentProcessing":4}},"ollama":{"numParallel":5}}}`)
	target := &ragv1.RagAppliance{}
	target.Namespace, target.Name = sampleNS, ra.Name
	if err := e.c.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	patchedAt := time.Now()
	e.waitFor(ctx, t, "the rollout to begin (the RAG server's ConfigMap changed)", func() error {
		if err := e.c.Get(ctx, cmKey, cm); err != nil {
			return err
		}
		if cm.Data["config.json"] == before {
			return fmt.Errorf("ConfigMap unchanged")
		}
		return nil
	})
	e.op.Manager.Kill()
	killedAt := time.Now()
	ollama := &appsv1.Deployment{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: sampleNS, Name: ra.Name + "-ollama"}, ollama); err != nil {
		t.Fatal(err)
	}
	ollamaDone := envValue(ollama.Spec.Template.Spec.Containers[0].Env, "OLLAMA_NUM_PARALLEL") == "5"
	left := getAppliance(ctx, t, e)
	t.Logf("killed %s after the patch; Ollama already rolled: %v; status observedGeneration %d of %d",
		killedAt.Sub(patchedAt).Round(time.Millisecond), ollamaDone, left.Status.ObservedGeneration, left.Generation)

	if err := e.op.Manager.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	got := waitAppliance(ctx, t, e, "Ready at the patched generation after the restart", func(cur *ragv1.RagAppliance) error {
		if cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("observedGeneration %d of %d", cur.Status.ObservedGeneration, cur.Generation)
		}
		return conditionTrue(cur, ragv1.ConditionReady)
	})
	recovered := time.Since(restartedAt)

	if err := e.c.Get(ctx, client.ObjectKeyFromObject(ollama), ollama); err != nil {
		t.Fatal(err)
	}
	if v := envValue(ollama.Spec.Template.Spec.Containers[0].Env, "OLLAMA_NUM_PARALLEL"); v != "5" {
		t.Errorf("Ollama's OLLAMA_NUM_PARALLEL %q after recovery, want 5", v)
	}
	if err := e.c.Get(ctx, cmKey, cm); err != nil || !strings.Contains(cm.Data["config.json"], `"maxConcurrentProcessing": 4`) {
		t.Errorf("RAG server config after recovery lacks maxConcurrentProcessing 4 (%v)", err)
	}
	rag := &appsv1.Deployment{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: sampleNS, Name: ra.Name + "-rag-server"}, rag); err != nil {
		t.Fatal(err)
	}
	if rag.Status.UpdatedReplicas != *rag.Spec.Replicas || rag.Status.ObservedGeneration != rag.Generation {
		t.Errorf("RAG server rollout not finished: %+v", rag.Status)
	}
	// Nothing duplicated, nothing re-run, no data volume replaced.
	for _, kind := range []string{"ollama", "rag-server"} {
		var pods corev1.PodList
		if err := e.c.List(ctx, &pods, client.InNamespace(sampleNS), client.MatchingLabels{"app.kubernetes.io/instance": ra.Name, "app.kubernetes.io/name": kind}); err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				live++
			}
		}
		if live != 1 {
			t.Errorf("%d live %s pods after recovery, want 1", live, kind)
		}
	}
	if n := modelJobCount(ctx, t, e, ra.Name); n > jobsBefore {
		t.Errorf("%d model Jobs after recovery (%d before): the variants did not change, nothing should re-run", n, jobsBefore)
	}
	for name, uid := range claimUIDs(ctx, t, e, ra.Name) {
		if claims[name] != uid {
			t.Errorf("claim %s replaced across the drill (uid %s → %s)", name, claims[name], uid)
		}
	}
	t.Logf("DRILL operator-killed-mid-rollout: killed %s after the patch (Ollama rolled before the kill: %v); restarted manager took the Lease and had the appliance Ready at generation %d in %s; live pods 1 per component, model Jobs %d→%d, %d claims kept",
		killedAt.Sub(patchedAt).Round(time.Millisecond), ollamaDone, got.Generation, recovered.Round(100*time.Millisecond),
		jobsBefore, modelJobCount(ctx, t, e, ra.Name), len(claims))
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func claimUIDs(ctx context.Context, t *testing.T, e *env, instance string) map[string]types.UID {
	t.Helper()
	var l corev1.PersistentVolumeClaimList
	if err := e.c.List(ctx, &l, client.InNamespace(sampleNS), client.MatchingLabels{"app.kubernetes.io/instance": instance}); err != nil {
		t.Fatal(err)
	}
	out := map[string]types.UID{}
	for _, c := range l.Items {
		out[c.Name] = c.UID
	}
	return out
}

func modelJobCount(ctx context.Context, t *testing.T, e *env, instance string) int {
	t.Helper()
	var l batchv1.JobList
	if err := e.c.List(ctx, &l, client.InNamespace(sampleNS), client.MatchingLabels{"app.kubernetes.io/instance": instance, "app.kubernetes.io/name": "model-sync"}); err != nil {
		t.Fatal(err)
	}
	return len(l.Items)
}

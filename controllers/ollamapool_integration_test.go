package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/modelsync"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
)

// TestOllamaPoolModels: spec.ollama.replicas 2 on the real control plane with two real Ollama
// servers standing for the two pods. The pool is a StatefulSet with per-pod addresses; each
// variant's Job creates it on both servers; the variant is ready only when both have it, it is
// warmed on both, and losing it on one server is noticed.
func TestOllamaPoolModels(t *testing.T) {
	needEnv(t)
	ctx := context.Background()
	servers := []*ollamatest.Server{
		ollamatest.Start(t, ollamatest.Options{Env: map[string]string{"OLLAMA_MAX_LOADED_MODELS": "3"}}),
		ollamatest.Start(t, ollamatest.Options{Env: map[string]string{"OLLAMA_MAX_LOADED_MODELS": "3"}}),
	}
	for _, s := range servers {
		if err := ollamatest.CreateBaseModels(ctx, s.Client()); err != nil {
			t.Fatal(err)
		}
	}
	// Pod i of the pool is reached at the i-th override (the operator runs outside the cluster).
	testExternal.SetEndpoints(servers[0].URL+","+servers[1].URL, "")
	t.Cleanup(func() { testExternal.SetEndpoints("", "") })

	ns := newNamespace(t)
	u, err := createManifest(ns, manifest("pool", "ollama: {replicas: 2}"))
	if err != nil {
		t.Fatal(err)
	}
	ra := &ragv1.RagAppliance{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: u.GetName()}, ra); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{}
	eventually(t, settle, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ollamaName(ra)}, sts)
	})
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ollamaName(ra)}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("a pool also got the single server's Deployment: %v", err)
	}
	if *sts.Spec.Replicas != 2 || sts.Spec.ServiceName != ollamaHeadless(ra) || len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("pool StatefulSet: replicas %d, service %q, claim templates %d", *sts.Spec.Replicas, sts.Spec.ServiceName, len(sts.Spec.VolumeClaimTemplates))
	}
	markAvailable(t, sts)
	got := waitForStatus(t, ra, func(cur *ragv1.RagAppliance) error {
		if len(cur.Status.Endpoints.OllamaServers) != 2 {
			return fmt.Errorf("status.endpoints.ollamaServers = %v", cur.Status.Endpoints.OllamaServers)
		}
		return nil
	})
	if want := "http://pool-ollama-1.pool-ollama-headless." + ns + ".svc:11434"; got.Status.Endpoints.OllamaServers[1] != want {
		t.Errorf("second server %q, want %q", got.Status.Endpoints.OllamaServers[1], want)
	}

	// One Job per variant, naming both servers; running it creates the variant on each.
	var jobs []batchv1.Job
	eventually(t, settle, func() error {
		if jobs = modelJobs(t, ra); len(jobs) != 3 {
			return fmt.Errorf("%d model Jobs", len(jobs))
		}
		return nil
	})
	for _, j := range jobs {
		arg := j.Spec.Template.Spec.Containers[0].Args[1]
		if strings.Count(arg, "svc:11434") != 2 {
			t.Errorf("Job %s does not name both servers: %s", j.Name, arg)
		}
		runJobOn(t, j, servers[0].URL, servers[1].URL)
	}
	ready := waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionTrue, ragv1.ReasonModelsCreated))
	for _, m := range ready.Status.Models {
		if len(m.Servers) != 2 || !m.Servers[0].Present || !m.Servers[1].Present || m.Servers[0].Digest != m.Digest {
			t.Errorf("per-server status of %s: %+v (digest %s)", m.Name, m.Servers, m.Digest)
		}
	}
	for i, s := range servers {
		for _, name := range []string{"qwen3-rag", "nomic-embed-rag", "deepseek-r1-rag"} {
			if d, err := modelsync.Digest(ctx, s.Client(), name); err != nil || d == "" {
				t.Errorf("server %d lacks %s (%v)", i, name, err)
			}
		}
	}

	// Warmed on every server.
	eventually(t, 120*time.Second, func() error {
		_, _ = reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ra)})
		cur := &ragv1.RagAppliance{}
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(ra), cur)
		return conditionIs(ragv1.ConditionModelsResident, metav1.ConditionTrue, ragv1.ReasonAllResident)(cur)
	})
	for i, s := range servers {
		if ps, err := s.Client().ListRunning(ctx); err != nil || len(ps.Models) != 3 {
			t.Errorf("server %d runs %d models (%v), want 3", i, len(ps.Models), err)
		}
	}

	// A variant lost on one server only: the pool no longer has it.
	if err := servers[1].Client().Delete(ctx, &api.DeleteRequest{Model: "qwen3-rag"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, settle, func() error {
		_, _ = reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ra)})
		cur := &ragv1.RagAppliance{}
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(ra), cur)
		m := modelStatus(cur, "qwen3-rag")
		if m.Ready {
			return fmt.Errorf("qwen3-rag still ready after it was deleted from one server: %+v", m)
		}
		// Per server: still on pod 0, gone from pod 1.
		if len(m.Servers) != 2 || !m.Servers[0].Present || m.Servers[1].Present || !strings.Contains(m.Servers[1].Server, "pool-ollama-1.") {
			return fmt.Errorf("per-server status of qwen3-rag: %+v", m.Servers)
		}
		return nil
	})
}

// runJobOn plays a pool Job's pod: model-sync on each server in turn, as the container does.
func runJobOn(t *testing.T, j batchv1.Job, urls ...string) {
	t.Helper()
	var err error
	for _, u := range urls {
		if err = syncVariantOf(t, j, u); err != nil {
			break
		}
	}
	setJobOutcome(t, j, err)
}

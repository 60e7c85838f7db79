package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/modelspec"
	"github.com/ragstack/rag-operator/internal/modelsync"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
)

// backoffSettle bounds waits that may include a model Job's backoff: every Job pushes the next
// attempt for its variant 10 s, then 20 s, … out (so a variant that keeps vanishing is not
// re-created in a loop), and a status read from a lagging cache can still hold that time.
const backoffSettle = 60 * time.Second

// modelJobs lists the appliance's model-creation Jobs.
func modelJobs(t *testing.T, ra *ragv1.RagAppliance) []batchv1.Job {
	t.Helper()
	jobs := &batchv1.JobList{}
	if err := k8s.List(context.Background(), jobs, client.InNamespace(ra.Namespace), client.MatchingLabels(selectorLabels(ra, componentModelSync))); err != nil {
		t.Fatal(err)
	}
	var live []batchv1.Job
	for _, j := range jobs.Items {
		if j.DeletionTimestamp == nil {
			live = append(live, j)
		}
	}
	return live
}

// runJob plays the Job's pod: it runs the container's own arguments (model-sync against the
// real Ollama) and reports the outcome in the Job's status as the Job controller would.
func runJob(t *testing.T, j batchv1.Job, ollamaURL string) {
	t.Helper()
	args := j.Spec.Template.Spec.Containers[0].Args
	if args[0] != "model-sync" {
		t.Fatalf("Job %s runs %v", j.Name, args)
	}
	setJobOutcome(t, j, syncVariantOf(t, j, ollamaURL))
}

// syncVariantOf runs a model Job's model-sync against one Ollama server.
func syncVariantOf(t *testing.T, j batchv1.Job, ollamaURL string) error {
	t.Helper()
	var v modelspec.Variant
	for _, a := range j.Spec.Template.Spec.Containers[0].Args[1:] {
		if val, ok := strings.CutPrefix(a, "--variant="); ok {
			if err := json.Unmarshal([]byte(val), &v); err != nil {
				t.Fatal(err)
			}
		}
	}
	u, _ := url.Parse(ollamaURL)
	c := api.NewClient(u, http.DefaultClient)
	_, err := modelsync.Sync(context.Background(), c, v, modelsync.Options{PullAttempts: 1})
	return err
}

func setJobOutcome(t *testing.T, j batchv1.Job, runErr error) {
	t.Helper()
	now := metav1.Now()
	j.Status.StartTime = &now
	if runErr == nil {
		j.Status.CompletionTime = &now
		j.Status.Succeeded = 1
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	} else {
		j.Status.Failed = 1
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: runErr.Error(), LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: runErr.Error(), LastTransitionTime: now},
		}
	}
	if err := k8s.Status().Update(context.Background(), &j); err != nil {
		t.Fatalf("set Job %s status: %v", j.Name, err)
	}
}

func modelStatus(ra *ragv1.RagAppliance, name string) ragv1.ModelStatus {
	for _, m := range ra.Status.Models {
		if m.Name == name {
			return m
		}
	}
	return ragv1.ModelStatus{}
}

// TestModelsAndCollectionThroughTheirAPIs drives the whole issue-3 loop on the real control
// plane, a real Ollama (tiny models under the production base names) and the Qdrant double.
func TestModelsAndCollectionThroughTheirAPIs(t *testing.T) {
	needEnv(t)
	srv := ollamatest.Start(t, ollamatest.Options{Env: map[string]string{"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_MAX_LOADED_MODELS": "3"}})
	ctx := context.Background()
	if err := ollamatest.CreateBaseModels(ctx, srv.Client()); err != nil {
		t.Fatal(err)
	}
	q := qdrantdouble.Start(t)
	host, port := q.Addr()
	testExternal.SetEndpoints(srv.URL, fmt.Sprintf("%s:%d", host, port))
	t.Cleanup(func() { testExternal.SetEndpoints("", "") })

	ns := newNamespace(t)
	ra := applySample(t, ns, "rag_v1alpha1_ragappliance_minimal.yaml")
	children := waitForChildren(t, ra)
	waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionFalse, ragv1.ReasonWaitingForOllama))

	// Ollama up: one Job per variant, named with the variant spec's hash.
	markAvailable(t, children["ollama Deployment"])
	var jobs []batchv1.Job
	eventually(t, settle, func() error {
		if jobs = modelJobs(t, ra); len(jobs) != 3 {
			return fmt.Errorf("%d model Jobs", len(jobs))
		}
		return nil
	})
	for _, j := range jobs {
		if j.Spec.BackoffLimit == nil || j.Spec.ActiveDeadlineSeconds == nil || j.Spec.Template.Spec.Containers[0].Image != DefaultModelSyncImage {
			t.Errorf("Job %s: backoffLimit/activeDeadline/image not set: %+v", j.Name, j.Spec)
		}
		if !metav1.IsControlledBy(&j, ra) || !strings.Contains(j.Name, j.Labels[specHashLabel]) {
			t.Errorf("Job %s: owner or hash missing", j.Name)
		}
	}
	waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionFalse, ragv1.ReasonModelSyncRunning))

	// The Jobs run model-sync against the real Ollama; completed Jobs → ModelsReady, Jobs gone.
	for _, j := range jobs {
		runJob(t, j, srv.URL)
	}
	got := waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionTrue, ragv1.ReasonModelsCreated))
	for _, name := range []string{"qwen3-rag", "nomic-embed-rag", "deepseek-r1-rag"} {
		m := modelStatus(got, name)
		if !m.Ready || m.Digest == "" || len(m.Parameters) == 0 {
			t.Errorf("status.models[%s] = %+v", name, m)
		}
	}
	if p := strings.Join(modelStatus(got, "qwen3-rag").Parameters, " "); !strings.Contains(p, "num_ctx=8192") || !strings.Contains(p, "num_thread=10") {
		t.Errorf("qwen3-rag parameters applied: %s", p)
	}
	eventually(t, settle, func() error {
		if n := len(modelJobs(t, ra)); n != 0 {
			return fmt.Errorf("%d finished Jobs not cleaned up", n)
		}
		return nil
	})
	if got.Status.OllamaVersion != ollamatest.Version {
		t.Errorf("status.ollamaVersion = %q, want %q", got.Status.OllamaVersion, ollamatest.Version)
	}

	// Verification as status: every variant warmed and resident with its context length.
	eventually(t, 90*time.Second, func() error {
		_, _ = reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ra)})
		cur := &ragv1.RagAppliance{}
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(ra), cur)
		return conditionIs(ragv1.ConditionModelsResident, metav1.ConditionTrue, ragv1.ReasonAllResident)(cur)
	})
	ps, err := srv.Client().ListRunning(ctx)
	if err != nil || len(ps.Models) != 3 {
		t.Fatalf("ollama ps shows %d models (%v), want 3", len(ps.Models), err)
	}

	// Memory budget rows read from Ollama's Show for the loaded variants.
	got = waitForStatus(t, ra, func(ra *ragv1.RagAppliance) error {
		if ra.Status.Memory == nil || len(ra.Status.Memory.Rows) < 4 || ra.Status.Memory.Rows[0].Source != "ollama-show" {
			return fmt.Errorf("memory status %+v", ra.Status.Memory)
		}
		return nil
	})
	if c := meta.FindStatusCondition(got.Status.Conditions, ragv1.ConditionMemoryBudget); c == nil || c.Status == metav1.ConditionTrue {
		// No node exists in envtest and no total is declared: the budget cannot say "fits".
		t.Errorf("MemoryBudget = %+v", c)
	}

	// The collection: Qdrant ready → created through gRPC with the guide's settings.
	markAvailable(t, children["qdrant StatefulSet"])
	got = waitForStatus(t, ra, conditionIs(ragv1.ConditionCollectionReady, metav1.ConditionTrue, ragv1.ReasonCollectionConfigured))
	if c := got.Status.Collection; c == nil || c.VectorSize != 768 || c.HNSWEfConstruct != 200 || c.Quantization != "scalar-int8-always-ram" || c.IndexingThreshold != 50000 {
		t.Fatalf("status.collection = %+v", got.Status.Collection)
	}
	// Declared HNSW change → updated in place.
	patchSpec(t, ra, `{"spec":{"qdrant":{"collection":{"hnsw":{"efConstruct":256}}}}}`)
	waitForStatus(t, ra, func(ra *ragv1.RagAppliance) error {
		if ra.Status.Collection == nil || ra.Status.Collection.HNSWEfConstruct != 256 {
			return fmt.Errorf("collection %+v", ra.Status.Collection)
		}
		return nil
	})

	// A changed variant runs a new Job (new hash); the old variant state is not reused.
	patchSpec(t, ra, `{"spec":{"models":[
		{"name":"qwen3-rag","from":"qwen3:8b","role":"chat","parameters":{"numCtx":8192,"numThread":8}},
		{"name":"nomic-embed-rag","from":"nomic-embed-text","role":"embedding","parameters":{"numCtx":2048,"numThread":10}},
		{"name":"deepseek-r1-rag","from":"deepseek-r1:14b","role":"reasoning","parameters":{"numCtx":16384,"numThread":10,"numGPU":999}}]}}`)
	var changed batchv1.Job
	eventually(t, settle, func() error {
		jobs := modelJobs(t, ra)
		if len(jobs) != 1 || jobs[0].Labels[variantLabel] != "qwen3-rag" {
			return fmt.Errorf("want one new Job for qwen3-rag, have %d", len(jobs))
		}
		changed = jobs[0]
		return nil
	})
	waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionFalse, ragv1.ReasonModelSyncRunning))
	runJob(t, changed, srv.URL)
	waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionTrue, ragv1.ReasonModelsCreated))

	// Model store lost: a variant deleted from Ollama is detected and re-created by a Job.
	if err := srv.Client().Delete(ctx, &api.DeleteRequest{Model: "nomic-embed-rag"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, backoffSettle, func() error {
		_, _ = reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ra)})
		jobs := modelJobs(t, ra)
		if len(jobs) != 1 || jobs[0].Labels[variantLabel] != "nomic-embed-rag" {
			return fmt.Errorf("want a Job re-creating nomic-embed-rag, have %d", len(jobs))
		}
		changed = jobs[0]
		return nil
	})

	// A failed Job is a condition with its reason, not a crash loop.
	setJobOutcome(t, changed, fmt.Errorf("pull nomic-embed-text: model registry unreachable"))
	got = waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionFalse, ragv1.ReasonModelSyncFailed))
	if m := modelStatus(got, "nomic-embed-rag"); !strings.Contains(m.LastError, "registry unreachable") ||
		!strings.Contains(m.LastError, "retrying after") {
		t.Errorf("lastError = %q, want the reason and when it is retried", m.LastError)
	}
	// Until then the failed Job stays (its logs) and nothing is re-run.
	if jobs := modelJobs(t, ra); len(jobs) != 1 || jobs[0].UID != changed.UID {
		t.Fatalf("failed Job replaced before its retry time: %d Jobs", len(jobs))
	}

	// The retry time passes (the failure is dated back): the failed Job is replaced by a fresh
	// one, which succeeds now that the registry answers.
	failed := &batchv1.Job{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(&changed), failed); err != nil {
		t.Fatal(err)
	}
	// Past the longest wait (the retry wait doubles with every attempt, up to 6 h).
	long := metav1.NewTime(time.Now().Add(-7 * time.Hour))
	for i := range failed.Status.Conditions {
		failed.Status.Conditions[i].LastTransitionTime = long
	}
	if err := k8s.Status().Update(ctx, failed); err != nil {
		t.Fatal(err)
	}
	var retried batchv1.Job
	eventually(t, backoffSettle, func() error {
		_, _ = reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ra)})
		jobs := modelJobs(t, ra)
		if len(jobs) != 1 || jobs[0].UID == changed.UID || jobOutcome(&jobs[0]) != "" {
			cur := &ragv1.RagAppliance{}
			_ = k8s.Get(ctx, client.ObjectKeyFromObject(ra), cur)
			return fmt.Errorf("want a fresh Job for nomic-embed-rag, have %d; status %+v", len(jobs), modelStatus(cur, "nomic-embed-rag"))
		}
		retried = jobs[0]
		return nil
	})
	runJob(t, retried, srv.URL)
	got = waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionTrue, ragv1.ReasonModelsCreated))
	if m := modelStatus(got, "nomic-embed-rag"); !m.Ready || m.LastError != "" {
		t.Errorf("after the retry: %+v", m)
	}
	_ = children
	_ = appsv1.Deployment{}
}

// TestIgnoredSettingsFollowTheRunningVersion: with an image tag that names no version, the
// version Ollama reports decides; OLLAMA_MULTIUSER_CACHE is not rendered for ≥ 0.30 and is
// reported instead.
func TestIgnoredSettingsFollowTheRunningVersion(t *testing.T) {
	needEnv(t)
	fake := fakeOllamaVersion(t, "0.31.2")
	testExternal.SetEndpoints(fake, "")
	t.Cleanup(func() { testExternal.SetEndpoints("", "") })
	ns := newNamespace(t)
	u, err := createManifest(ns, manifest("latest", "ollama: {image: 'docker.io/ollama/ollama:latest', multiuserCache: true}"))
	if err != nil {
		t.Fatal(err)
	}
	ra := &ragv1.RagAppliance{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, ra)
	children := waitForChildren(t, ra)
	dep := children["ollama Deployment"].(*appsv1.Deployment)
	if _, ok := envMap(dep.Spec.Template.Spec.Containers[0].Env)["OLLAMA_MULTIUSER_CACHE"]; !ok {
		t.Fatal("before the version is known, the declared setting is rendered")
	}
	markAvailable(t, dep)
	got := waitForStatus(t, ra, func(ra *ragv1.RagAppliance) error {
		if ra.Status.OllamaVersion != "0.31.2" || strings.Join(ra.Status.IgnoredSettings, ",") != "OLLAMA_MULTIUSER_CACHE" {
			return fmt.Errorf("version %q ignored %v", ra.Status.OllamaVersion, ra.Status.IgnoredSettings)
		}
		return nil
	})
	_ = got
	eventually(t, settle, func() error {
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(dep), dep)
		if v, ok := envMap(dep.Spec.Template.Spec.Containers[0].Env)["OLLAMA_MULTIUSER_CACHE"]; ok {
			return fmt.Errorf("dead env still rendered: OLLAMA_MULTIUSER_CACHE=%s", v)
		}
		return nil
	})
	eventually(t, settle, func() error {
		events := &corev1.EventList{}
		_ = k8s.List(context.Background(), events, client.InNamespace(ns))
		for _, e := range events.Items {
			if e.Reason == ragv1.ReasonSettingsIgnored && strings.Contains(e.Message, "OLLAMA_MULTIUSER_CACHE") {
				return nil
			}
		}
		return fmt.Errorf("no %s event among %d", ragv1.ReasonSettingsIgnored, len(events.Items))
	})
}

// fakeOllamaVersion is an Ollama API that only reports a version and no models: the real
// server built here is 0.24.0, and this case needs one from after 0.30.
func fakeOllamaVersion(t *testing.T, version string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/version", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"version": version})
	})
	mux.HandleFunc("/api/tags", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"models":[]}`)) })
	mux.HandleFunc("/api/ps", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"models":[]}`)) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Package e2e installs rag-operator by its Helm chart into a local cluster with a simulated DGX
// Spark node (internal/testbed/cluster: kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler and KWOK) and checks what an operator user and a GitOps tool rely on:
// install → Ready, an appliance that does not tolerate the GPU node's taint reported as such,
// GitOps idempotence, upgrade, uninstall.
//
// The cluster is as strict as a real one: the node carries the GPU taint
// (nvidia.com/gpu=present:NoSchedule), the operator's and the appliances' namespaces enforce
// the restricted Pod Security level, and the apiserver runs OwnerReferencesPermissionEnforcement,
// so the chart's RBAC must grant what the operator's owner references need.
//
// The manager is built in TestMain, before any deadline starts: a cold build on a loaded
// machine takes minutes, which no step's deadline is meant to absorb.
//
// The manager Deployment's pod is simulated by KWOK; its command line runs on this machine as the
// chart's ServiceAccount, pointed at a real Ollama (tiny generated models under the production
// names) and the Qdrant double by the documented override flags. Model-sync Job pods are held by
// KWOK and run here by the cluster package's job runner.
//
// Skipped in -short mode. A missing asset (control plane, kwok, helm, ollama) skips with the make
// target to run, or fails when RAG_REQUIRE_E2E=1.
package e2e

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/testbed/cluster"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
)

// RequireEnv turns a missing asset from a skip into a failure (CI sets it).
const RequireEnv = "RAG_REQUIRE_E2E"

const (
	// sampleFile is the DGX Spark sample, every section spelled out: what a GitOps repository
	// holds. (The 4-line minimal sample owns no field when applied, so the API server keeps no
	// managedFields for it until a second apply records the defaults as "before-first-apply";
	// the demo runs it to Ready, see docs/demo.md.)
	sampleFile = "rag_v1alpha1_ragappliance_dgx_spark.yaml"
	// minimalFile is the 4-line sample: it tolerates nothing, so on a cluster of tainted GPU
	// nodes its pods stay Pending, which the operator must report.
	minimalFile = "rag_v1alpha1_ragappliance_minimal.yaml"
	// sampleNS is the appliances' namespace, created with the restricted Pod Security level.
	sampleNS    = "rag"
	operatorMgr = "rag-operator" // the operator's server-side apply field manager
	gitopsMgr   = "gitops"       // the field manager our "GitOps tool" applies with
	crdName     = "ragappliances.rag.ragstack.dev"
)

// managerBinary is ./cmd/manager built by TestMain (buildErr when that failed): it stands for
// the chart's image.
var managerBinary, buildErr = "", error(nil)

// TestMain builds the manager before any test's clock starts, with no deadline: compiling is
// not what the steps' deadlines measure. It builds nothing in -short mode or when an asset is
// missing (the test then skips or fails at once).
func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() || cluster.CheckAssets(cluster.Options{}) != nil {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "rag-e2e-bin-")
		if err != nil {
			buildErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		start := time.Now()
		managerBinary, buildErr = cluster.BuildManager(context.Background(), dir)
		if testing.Verbose() && buildErr == nil {
			fmt.Printf("e2e: built ./cmd/manager in %s (before any deadline)\n", time.Since(start).Round(100*time.Millisecond))
		}
		return m.Run()
	}()
	os.Exit(code)
}

// need skips in -short mode, and when an asset is missing skips (or fails under
// RAG_REQUIRE_E2E=1) with the make target that builds it.
func need(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e skipped in -short mode")
	}
	missing := func(err error) {
		t.Helper()
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v (%s=1)", err, RequireEnv)
		}
		t.Skipf("%v (set %s=1 to fail instead)", err, RequireEnv)
	}
	if err := cluster.CheckAssets(cluster.Options{}); err != nil {
		missing(err)
	}
	if _, err := os.Stat(cluster.DefaultHelm()); err != nil {
		missing(&cluster.MissingAssetError{Path: cluster.DefaultHelm(), Target: "helm"})
	}
	if _, err := ollamatest.Binary(); err != nil {
		missing(fmt.Errorf("ollama binary: %v: run `make ollama` first", err))
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// env is what the subtests share.
type env struct {
	cl     *cluster.Cluster
	c      client.Client
	cs     *kubernetes.Clientset
	op     *cluster.Operator
	ollama *ollamatest.Server
	qdrant *qdrantdouble.Server
	sample *unstructured.Unstructured
}

// TestChartLifecycle walks one release through install, GitOps checks, upgrade and uninstall.
// Each step has its own deadline (well under 2 min); a failed step skips the ones after it.
func TestChartLifecycle(t *testing.T) {
	need(t)
	e := setup(t)
	steps := []struct {
		name string
		fn   func(context.Context, *testing.T, *env)
	}{
		{"install", testInstall},
		{"untolerated", testUntolerated},
		{"gitops", testGitOps},
		{"upgrade", testUpgrade},
		{"operator-killed", testOperatorKilled},
		{"uninstall", testUninstall},
		{"events", testEvents},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
			defer cancel()
			s.fn(ctx, t, e)
		})
		if !ok {
			t.Fatalf("step %s failed; later steps depend on it", s.name)
		}
	}
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	start := time.Now()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(ragv1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))

	cl, err := cluster.Start(ctx, cluster.Options{HoldJobPods: cluster.HoldModelSync, Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			cl.KeepLogs()
			t.Logf("component logs kept in %s", cl.LogDir())
		}
		_ = cl.Stop()
	})
	e := &env{cl: cl, c: cl.Client()}
	if err := cl.CreateRestrictedNamespace(ctx, sampleNS); err != nil {
		t.Fatal(err)
	}
	if e.cs, err = kubernetes.NewForConfig(cl.RESTConfig()); err != nil {
		t.Fatal(err)
	}
	// The sample's server settings, except OLLAMA_KV_CACHE_TYPE=q8_0: the tiny stand-in qwen3 has
	// 16-wide attention heads and ggml's q8_0 cache needs blocks of 32 (its runner aborts).
	e.ollama = ollamatest.StartWithModels(t, ollamatest.Options{Env: map[string]string{
		"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_MAX_LOADED_MODELS": "3", "OLLAMA_KEEP_ALIVE": "24h",
		"OLLAMA_FLASH_ATTENTION": "1",
	}})
	e.qdrant = qdrantdouble.Start(t)
	e.sample = readSample(t, sampleFile)
	t.Logf("setup (cluster, Ollama with models, Qdrant double) took %s", time.Since(start).Round(100*time.Millisecond))

	t.Cleanup(func() {
		if e.op == nil {
			return
		}
		if t.Failed() {
			t.Logf("manager log (%s), last part:\n%s", e.op.Manager.LogPath(), tailFile(e.op.Manager.LogPath(), 6<<10))
		}
		e.op.Stop()
	})
	return e
}

// readSample reads a manifest of config/samples, put in sampleNS.
func readSample(t *testing.T, file string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace(sampleNS)
	return u
}

// testInstall: helm install into a restricted namespace, apply the DGX sample (which tolerates
// the GPU taint), reach Ready with every pod scheduled and Running on the tainted node and every
// model Job run for real, one Event per Job; then wait until the variants are resident (the
// operator's last status change), so the later steps see a converged appliance.
func testInstall(ctx context.Context, t *testing.T, e *env) {
	op, err := e.cl.InstallOperator(ctx, cluster.OperatorOptions{
		ManagerBinary: managerBinary,
		OllamaURL:     e.ollama.URL,
		QdrantAddress: e.qdrant.Address(),
		// The only node is a tainted GPU node: the manager must tolerate the taint to run.
		Tolerations: []corev1.Toleration{cluster.GPUToleration()},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.op = op
	// The manager runs as the chart's ServiceAccount, not as an administrator.
	if got, want := op.Manager.ServiceAccount(), op.Namespace()+"/"+op.Deployment; got != want {
		t.Errorf("manager authenticates as %s, want the chart's ServiceAccount %s", got, want)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := e.c.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
		t.Fatalf("the chart did not install the CRD: %v", err)
	}
	for _, name := range []string{op.Namespace(), sampleNS} {
		ns := &corev1.Namespace{}
		if err := e.c.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil || ns.Labels[cluster.PodSecurityEnforce] != cluster.PodSecurityRestricted {
			t.Errorf("namespace %s does not enforce the restricted Pod Security level: %v %v", name, err, ns.Labels)
		}
	}

	apply(ctx, t, e, e.sample)
	ra := waitAppliance(ctx, t, e, "Ready", func(ra *ragv1.RagAppliance) error {
		return conditionTrue(ra, ragv1.ConditionReady)
	})

	pods := &corev1.PodList{}
	if err := e.c.List(ctx, pods, client.InNamespace(sampleNS), client.MatchingLabels{"app.kubernetes.io/instance": ra.Name}); err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{}
	for _, p := range pods.Items {
		if p.Labels["app.kubernetes.io/name"] == "model-sync" {
			// A finished model Job's pod, until the garbage collector follows the Job's deletion.
			if p.Status.Phase != corev1.PodSucceeded {
				t.Errorf("model-sync pod %s is %s, want Succeeded", p.Name, p.Status.Phase)
			}
			continue
		}
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != "dgx-spark-0" {
			msg, _ := unschedulable(&p)
			t.Errorf("pod %s is %s on %q, want Running on dgx-spark-0 %s", p.Name, p.Status.Phase, p.Spec.NodeName, msg)
		}
		running[p.Labels["app.kubernetes.io/name"]] = true
	}
	for _, c := range []string{"ollama", "qdrant", "rag-server"} {
		if !running[c] {
			t.Errorf("no %s pod (pods: %v)", c, running)
		}
	}

	// Every variant was created by its Job, run for real against Ollama.
	runs := op.Jobs.Runs()
	if len(runs) != len(ra.Spec.Models) {
		t.Errorf("job runner ran %d model-sync pods, want one per variant (%d)", len(runs), len(ra.Spec.Models))
	}
	for _, r := range runs {
		if r.ExitCode != 0 {
			t.Errorf("job %s exited %d:\n%s", r.Job, r.ExitCode, r.Output)
		}
		if filepath.Base(r.Command[0]) != "manager" || r.Command[1] != "model-sync" || !slices.Contains(r.Command, "--ollama="+e.ollama.URL) {
			t.Errorf("job %s ran %q", r.Job, r.Command)
		}
	}
	listed, err := e.ollama.Client().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ra.Spec.Models {
		if !slices.ContainsFunc(listed.Models, func(l api.ListModelResponse) bool { return strings.TrimSuffix(l.Name, ":latest") == m.Name }) {
			t.Errorf("variant %s is not on Ollama", m.Name)
		}
	}
	if op.Jobs.Err() != nil {
		t.Error(op.Jobs.Err())
	}
	ra = waitAppliance(ctx, t, e, "ModelsResident", func(ra *ragv1.RagAppliance) error {
		return conditionTrue(ra, ragv1.ConditionModelsResident)
	})
	if ra.Status.Memory == nil || ra.Status.Memory.TotalSource == "" || !strings.Contains(ra.Status.Memory.TotalSource, "dgx-spark-0") {
		t.Errorf("memory budget total does not come from the node: %+v", ra.Status.Memory)
	}
}

// testEvents: the operator reported each model Job it created with its own Event, written
// once: a single Job is not an "x2", and two Jobs are not one Event "x2" carrying the first
// Job's note (events.k8s.io merges Events with the same regarding object, reason, action and
// related object into a series). Last, so that it reads everything the install wrote.
func testEvents(ctx context.Context, t *testing.T, e *env) {
	ra := getAppliance(ctx, t, e)
	jobs := len(ra.Spec.Models)
	occurrences := func(ev eventsv1.Event) int32 {
		if ev.Series != nil {
			return ev.Series.Count
		}
		return 1
	}
	list := &eventsv1.EventList{}
	if err := e.c.List(ctx, list, client.InNamespace(sampleNS)); err != nil {
		t.Fatal(err)
	}
	var started, all []string
	notes := map[string]bool{}
	repeated := false
	for _, ev := range list.Items {
		if ev.Regarding.Kind != "RagAppliance" || ev.Regarding.Name != ra.Name {
			continue
		}
		line := fmt.Sprintf("%s/%s %q x%d", ev.Reason, ev.Action, ev.Note, occurrences(ev))
		all = append(all, line)
		if ev.Reason == "ModelSyncStarted" {
			started = append(started, line)
			notes[ev.Note] = true
			repeated = repeated || occurrences(ev) > 1
		}
	}
	if len(started) != jobs || len(notes) != jobs || repeated {
		t.Errorf("want one ModelSyncStarted Event per model Job (%d), each once; got %d: %s\nevery Event of the appliance:\n  %s",
			jobs, len(started), strings.Join(started, ", "), strings.Join(all, "\n  "))
	}
}

// testUntolerated: the minimal sample declares no toleration, so on a cluster whose only node is
// a tainted GPU node its Ollama pod stays Pending, and the operator says why in OllamaReady with
// the scheduler's words. The DGX appliance stays Ready meanwhile. The appliance is deleted at the
// end, so the later steps see one appliance.
func testUntolerated(ctx context.Context, t *testing.T, e *env) {
	minimal := readSample(t, minimalFile)
	apply(ctx, t, e, minimal)
	name := minimal.GetName()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ra := &ragv1.RagAppliance{ObjectMeta: metav1.ObjectMeta{Namespace: sampleNS, Name: name}}
		if err := e.c.Delete(ctx, ra); client.IgnoreNotFound(err) != nil {
			t.Error(err)
		}
	})

	var why string
	e.waitFor(ctx, t, "the minimal appliance's Ollama pod Pending, Unschedulable", func() error {
		pods := &corev1.PodList{}
		if err := e.c.List(ctx, pods, client.InNamespace(sampleNS),
			client.MatchingLabels{"app.kubernetes.io/instance": name, "app.kubernetes.io/name": "ollama"}); err != nil {
			return err
		}
		if len(pods.Items) != 1 {
			return fmt.Errorf("%d Ollama pods", len(pods.Items))
		}
		p := &pods.Items[0]
		msg, ok := unschedulable(p)
		if !ok || p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
			return fmt.Errorf("pod %s is %s on %q (%v)", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.Conditions)
		}
		if !strings.Contains(msg, "untolerated taint") {
			return fmt.Errorf("scheduler's message %q does not name the untolerated taint", msg)
		}
		why = msg
		return nil
	})
	t.Logf("scheduler: %s", why)

	waitApplianceNamed(ctx, t, e, name, "OllamaReady=False with the scheduler's reason", func(ra *ragv1.RagAppliance) error {
		c := meta.FindStatusCondition(ra.Status.Conditions, ragv1.ConditionOllamaReady)
		if c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("OllamaReady is %v, want False", c)
		}
		// Reason Unschedulable (ragv1.ReasonUnschedulable), the message with the scheduler's words.
		if c.Reason != "Unschedulable" || !strings.Contains(c.Message, "untolerated taint") {
			return fmt.Errorf("OllamaReady=False (%s) %q does not pass on the scheduler's reason (%q)", c.Reason, c.Message, why)
		}
		if err := conditionTrue(ra, ragv1.ConditionReady); err == nil {
			return fmt.Errorf("Ready=True with Ollama unschedulable")
		}
		return nil
	})
	if err := conditionTrue(getAppliance(ctx, t, e), ragv1.ConditionReady); err != nil {
		t.Errorf("the DGX appliance: %v", err)
	}

	ra := &ragv1.RagAppliance{ObjectMeta: metav1.ObjectMeta{Namespace: sampleNS, Name: name}}
	if err := e.c.Delete(ctx, ra); err != nil {
		t.Fatal(err)
	}
	e.waitFor(ctx, t, "the minimal appliance gone", func() error {
		err := e.c.Get(ctx, client.ObjectKeyFromObject(ra), &ragv1.RagAppliance{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
}

// unschedulable is the scheduler's message when it marked the pod Unschedulable.
func unschedulable(p *corev1.Pod) (string, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message, true
		}
	}
	return "", false
}

// testGitOps: re-applying the manifest changes nothing, the operator owns only status on the
// appliance, and the operator's own intent for each child, re-applied (dry run), is a no-op.
func testGitOps(ctx context.Context, t *testing.T, e *env) {
	before := getAppliance(ctx, t, e)
	first := apply(ctx, t, e, e.sample)
	second := apply(ctx, t, e, e.sample)
	if before.ResourceVersion != first.GetResourceVersion() || first.GetResourceVersion() != second.GetResourceVersion() {
		t.Errorf("applying the same manifest changed the appliance: resourceVersion %s → %s → %s",
			before.ResourceVersion, first.GetResourceVersion(), second.GetResourceVersion())
	}
	if second.GetGeneration() != before.Generation {
		t.Errorf("generation %d → %d", before.Generation, second.GetGeneration())
	}

	// managedFields: the GitOps applier owns the spec; every other manager only the status.
	ra := getAppliance(ctx, t, e)
	statusWriters := 0
	for _, mf := range ra.ManagedFields {
		switch {
		case mf.Manager == gitopsMgr && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Subresource == "":
		case mf.Subresource == "status":
			statusWriters++
		default:
			t.Errorf("manager %q (%s) owns fields of the appliance outside status: %s", mf.Manager, mf.Operation, mf.FieldsV1.String())
		}
	}
	if statusWriters == 0 {
		t.Error("no manager owns the appliance's status: the operator did not write it")
	}

	// The operator's applied intent, extracted from managedFields and applied back as the
	// operator (dry run, forced like the operator does): the server must answer the live object.
	children := 0
	dry := metav1.ApplyOptions{FieldManager: operatorMgr, Force: true, DryRun: []string{metav1.DryRunAll}}
	check := func(kind, name string, live, got any) {
		t.Helper()
		children++
		if !equality.Semantic.DeepEqual(live, got) {
			t.Errorf("%s %s: re-applying the operator's intent would change it:\nlive: %s\ndry-run: %s", kind, name, toYAML(live), toYAML(got))
		}
	}
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + ra.Name}
	deps, err := e.cs.AppsV1().Deployments(sampleNS).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for i := range deps.Items {
		live := &deps.Items[i]
		ac, err := appsv1ac.ExtractDeployment(live, operatorMgr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.cs.AppsV1().Deployments(sampleNS).Apply(ctx, ac, dry)
		if err != nil {
			t.Fatal(err)
		}
		check("Deployment", live.Name, live, got)
	}
	stss, err := e.cs.AppsV1().StatefulSets(sampleNS).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for i := range stss.Items {
		live := &stss.Items[i]
		ac, err := appsv1ac.ExtractStatefulSet(live, operatorMgr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.cs.AppsV1().StatefulSets(sampleNS).Apply(ctx, ac, dry)
		if err != nil {
			t.Fatal(err)
		}
		check("StatefulSet", live.Name, live, got)
	}
	svcs, err := e.cs.CoreV1().Services(sampleNS).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for i := range svcs.Items {
		live := &svcs.Items[i]
		ac, err := corev1ac.ExtractService(live, operatorMgr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.cs.CoreV1().Services(sampleNS).Apply(ctx, ac, dry)
		if err != nil {
			t.Fatal(err)
		}
		check("Service", live.Name, live, got)
	}
	cms, err := e.cs.CoreV1().ConfigMaps(sampleNS).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cms.Items {
		live := &cms.Items[i]
		ac, err := corev1ac.ExtractConfigMap(live, operatorMgr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.cs.CoreV1().ConfigMaps(sampleNS).Apply(ctx, ac, dry)
		if err != nil {
			t.Fatal(err)
		}
		check("ConfigMap", live.Name, live, got)
	}
	pvcs, err := e.cs.CoreV1().PersistentVolumeClaims(sampleNS).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pvcs.Items {
		live := &pvcs.Items[i]
		if !ownedBy(live.ManagedFields, operatorMgr) {
			continue // the StatefulSet controller's claim (from its volumeClaimTemplates)
		}
		ac, err := corev1ac.ExtractPersistentVolumeClaim(live, operatorMgr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.cs.CoreV1().PersistentVolumeClaims(sampleNS).Apply(ctx, ac, dry)
		if err != nil {
			t.Fatal(err)
		}
		check("PersistentVolumeClaim", live.Name, live, got)
	}
	// ollama + rag-server Deployments, the StatefulSet, 4 Services, 1 ConfigMap, 2 claims.
	if children < 10 {
		t.Errorf("checked %d children, want at least 10", children)
	}
	if after := getAppliance(ctx, t, e); after.ResourceVersion != ra.ResourceVersion {
		t.Errorf("the appliance changed during the checks: resourceVersion %s → %s", ra.ResourceVersion, after.ResourceVersion)
	}
}

// testUpgrade: a changed value rolls the manager Deployment (new template, new args, a new
// manager takes the Lease) and leaves the appliance and its children untouched.
func testUpgrade(ctx context.Context, t *testing.T, e *env) {
	ra := getAppliance(ctx, t, e)
	childRVs := childVersions(ctx, t, e, ra.Name)
	dep := &appsv1.Deployment{}
	key := client.ObjectKey{Namespace: e.op.Namespace(), Name: e.op.Deployment}
	if err := e.c.Get(ctx, key, dep); err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := e.c.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
		t.Fatal(err)
	}
	holder := leaseHolder(ctx, t, e)

	if err := e.op.Upgrade(ctx, "logging.level=debug"); err != nil {
		t.Fatal(err)
	}
	after := &appsv1.Deployment{}
	if err := e.c.Get(ctx, key, after); err != nil {
		t.Fatal(err)
	}
	if after.Generation <= dep.Generation {
		t.Errorf("manager Deployment generation %d → %d: the upgrade did not change it", dep.Generation, after.Generation)
	}
	if args := after.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--zap-log-level=debug") {
		t.Errorf("upgraded manager args %q lack --zap-log-level=debug", args)
	}
	if after.Status.UpdatedReplicas != 1 || after.Status.AvailableReplicas != 1 || after.Status.ObservedGeneration != after.Generation {
		t.Errorf("upgraded Deployment not rolled out: %+v", after.Status)
	}
	if !slices.Contains(e.op.Manager.Args(), "--zap-log-level=debug") {
		t.Errorf("the local manager was not restarted with the new args: %q", e.op.Manager.Args())
	}

	// The new manager takes the Lease (after the old one's expires) and reconciles everything.
	e.waitFor(ctx, t, "the upgraded manager to take the Lease", func() error {
		if h := leaseHolder(ctx, t, e); h == holder || h == "" {
			return fmt.Errorf("lease still held by %q", h)
		}
		return nil
	})
	// Its first pass re-applies every child (its applier starts empty): nothing may change.
	// The pass is over once the manager's own metrics count a successful reconcile, read as
	// Prometheus would: over HTTPS (unless the chart turned it off) with a ServiceAccount token
	// bound to the chart's metrics-reader ClusterRole.
	args := e.op.Manager.Args()
	metrics := "https://" + flagValue(args, "--metrics-bind-address") + "/metrics"
	if slices.Contains(args, "--metrics-secure=false") {
		metrics = "http://" + strings.TrimPrefix(metrics, "https://")
	}
	token := metricsReaderToken(ctx, t, e)
	e.waitFor(ctx, t, "the upgraded manager's first reconcile", func() error {
		return reconciled(ctx, metrics, token)
	})
	now := getAppliance(ctx, t, e)
	if now.Generation != ra.Generation || !equality.Semantic.DeepEqual(now.Spec, ra.Spec) {
		t.Errorf("the upgrade changed the appliance's spec (generation %d → %d)", ra.Generation, now.Generation)
	}
	if err := conditionTrue(now, ragv1.ConditionReady); err != nil {
		t.Error(err)
	}
	for k, v := range childVersions(ctx, t, e, ra.Name) {
		if childRVs[k] != v {
			t.Errorf("%s changed across the upgrade: resourceVersion %s → %s", k, childRVs[k], v)
		}
	}
	crdAfter := &apiextensionsv1.CustomResourceDefinition{}
	if err := e.c.Get(ctx, client.ObjectKey{Name: crdName}, crdAfter); err != nil {
		t.Fatal(err)
	}
	if crdAfter.Generation != crd.Generation {
		t.Errorf("the upgrade changed the CRD's spec: generation %d → %d", crd.Generation, crdAfter.Generation)
	}
}

// testUninstall: helm uninstall removes every object of the release except the CRD, which the
// chart keeps (helm.sh/resource-policy: keep) so that appliances survive.
func testUninstall(ctx context.Context, t *testing.T, e *env) {
	out, err := e.op.Uninstall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kept due to the resource policy") {
		t.Logf("helm uninstall said: %s", out)
	}
	release := e.op.Release()
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/instance": release}})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(e.cl.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	var leftovers []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") {
				continue
			}
			ul := &unstructured.UnstructuredList{}
			ul.SetGroupVersionKind(gv.WithKind(r.Kind + "List"))
			opts := []client.ListOption{client.MatchingLabelsSelector{Selector: sel}}
			if r.Namespaced {
				opts = append(opts, client.InNamespace(e.op.Namespace()))
			}
			if err := e.c.List(ctx, ul, opts...); err != nil {
				t.Fatalf("list %s: %v", r.Name, err)
			}
			for _, o := range ul.Items {
				if o.GetDeletionTimestamp() != nil && r.Kind == "Pod" {
					continue // KWOK removes terminating pods within a moment
				}
				leftovers = append(leftovers, strings.ToLower(r.Kind)+"/"+o.GetName())
			}
		}
	}
	if want := []string{"customresourcedefinition/" + crdName}; !slices.Equal(leftovers, want) {
		t.Errorf("after helm uninstall, the release left %q; want only %q", leftovers, want)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := e.c.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
		t.Fatal(err)
	}
	if crd.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the CRD lacks helm.sh/resource-policy: keep: %v", crd.Annotations)
	}
	// Not a leftover of the release: the namespace is created before the install (with the
	// restricted Pod Security labels), and helm never deletes a namespace anyway.
	if ra := getAppliance(ctx, t, e); ra.DeletionTimestamp != nil {
		t.Error("the appliance is being deleted after the uninstall")
	}
}

// apply server-side applies the manifest as the GitOps tool and returns the server's answer.
func apply(ctx context.Context, t *testing.T, e *env, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	u := obj.DeepCopy()
	if err := e.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(gitopsMgr)); err != nil {
		t.Fatalf("apply %s: %v", u.GetName(), err)
	}
	return u
}

func getAppliance(ctx context.Context, t *testing.T, e *env) *ragv1.RagAppliance {
	t.Helper()
	return getApplianceNamed(ctx, t, e, e.sample.GetName())
}

func getApplianceNamed(ctx context.Context, t *testing.T, e *env, name string) *ragv1.RagAppliance {
	t.Helper()
	ra := &ragv1.RagAppliance{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: sampleNS, Name: name}, ra); err != nil {
		t.Fatal(err)
	}
	return ra
}

// waitAppliance polls the DGX sample's appliance until cond holds for its current generation.
func waitAppliance(ctx context.Context, t *testing.T, e *env, what string, cond func(*ragv1.RagAppliance) error) *ragv1.RagAppliance {
	t.Helper()
	return waitApplianceNamed(ctx, t, e, e.sample.GetName(), what, cond)
}

// waitApplianceNamed polls an appliance of sampleNS until cond holds for its current generation.
func waitApplianceNamed(ctx context.Context, t *testing.T, e *env, name, what string, cond func(*ragv1.RagAppliance) error) *ragv1.RagAppliance {
	t.Helper()
	var ra *ragv1.RagAppliance
	e.waitFor(ctx, t, "appliance "+name+" "+what, func() error {
		ra = getApplianceNamed(ctx, t, e, name)
		if ra.Status.ObservedGeneration != ra.Generation {
			return fmt.Errorf("generation %d not observed yet", ra.Generation)
		}
		if err := cond(ra); err != nil {
			return err
		}
		return nil
	})
	return ra
}

func conditionTrue(ra *ragv1.RagAppliance, typ string) error {
	c := meta.FindStatusCondition(ra.Status.Conditions, typ)
	if c == nil {
		return fmt.Errorf("%s not reported yet", typ)
	}
	if c.Status != metav1.ConditionTrue {
		return fmt.Errorf("%s=%s (%s): %s", typ, c.Status, c.Reason, c.Message)
	}
	return nil
}

// waitFor polls cond until it returns nil; on timeout it fails with cond's last error, and at
// once when a cluster component or the manager stopped.
func (e *env) waitFor(ctx context.Context, t *testing.T, what string, cond func() error) {
	t.Helper()
	for {
		err := cond()
		if err == nil {
			return
		}
		if herr := e.cl.Healthy(); herr != nil {
			t.Fatalf("waiting for %s: %v", what, herr)
		}
		if e.op != nil && e.op.Manager != nil {
			if merr := e.op.Manager.Err(); merr != nil {
				t.Fatalf("waiting for %s: %v", what, merr)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func childVersions(ctx context.Context, t *testing.T, e *env, instance string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "DeploymentList"},
		{Group: "apps", Version: "v1", Kind: "StatefulSetList"},
		{Version: "v1", Kind: "ServiceList"},
		{Version: "v1", Kind: "ConfigMapList"},
		{Version: "v1", Kind: "PersistentVolumeClaimList"},
		{Version: "v1", Kind: "SecretList"},
	} {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk)
		if err := e.c.List(ctx, l, client.InNamespace(sampleNS), client.MatchingLabels{"app.kubernetes.io/instance": instance}); err != nil {
			t.Fatal(err)
		}
		for _, o := range l.Items {
			out[strings.TrimSuffix(gvk.Kind, "List")+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	if len(out) == 0 {
		t.Fatal("no children")
	}
	return out
}

func leaseHolder(ctx context.Context, t *testing.T, e *env) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.op.Namespace(), Name: "rag-operator.ragstack.dev"}, l); err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// metricsReaderToken is a token of a ServiceAccount bound to the release's metrics-reader
// ClusterRole: what a Prometheus scraping the manager holds.
func metricsReaderToken(ctx context.Context, t *testing.T, e *env) string {
	t.Helper()
	roles := &rbacv1.ClusterRoleList{}
	if err := e.c.List(ctx, roles, client.MatchingLabels{"app.kubernetes.io/instance": e.op.Release()}); err != nil {
		t.Fatal(err)
	}
	var reader string
	for _, r := range roles.Items {
		if strings.HasSuffix(r.Name, "-metrics-reader") {
			reader = r.Name
		}
	}
	if reader == "" {
		t.Fatalf("the release has no metrics-reader ClusterRole")
	}
	const name = "e2e-metrics-scraper"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: sampleNS}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: sampleNS}},
	}
	for _, o := range []client.Object{sa, binding} {
		if err := e.c.Create(ctx, o); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	cfg, err := e.cl.ServiceAccountConfig(ctx, sampleNS, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.BearerToken
}

// metricsHTTP accepts the manager's self-signed serving certificate (controller-runtime
// generates one when no certificate is configured).
var metricsHTTP = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed, loopback
}

// reconciled reads the manager's Prometheus metrics and succeeds once a reconcile finished
// without error.
func reconciled(ctx context.Context, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := metricsHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var seen []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "controller_runtime_reconcile_total{") {
			seen = append(seen, line)
			// A finished pass: "success", or "requeue_after" (the operator re-checks models).
			if !strings.Contains(line, `result="error"`) && !strings.HasSuffix(line, " 0") {
				return nil
			}
		}
	}
	return fmt.Errorf("no finished reconcile counted at %s yet: %q", url, seen)
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func ownedBy(mfs []metav1.ManagedFieldsEntry, manager string) bool {
	return slices.ContainsFunc(mfs, func(mf metav1.ManagedFieldsEntry) bool {
		return mf.Manager == manager && mf.Operation == metav1.ManagedFieldsOperationApply
	})
}

func toYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

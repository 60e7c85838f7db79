// Package e2e installs rag-operator by its Helm chart into a local cluster with a simulated DGX
// Spark node (internal/testbed/cluster: kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler and KWOK) and checks what an operator user and a GitOps tool rely on:
// install → Ready, GitOps idempotence, upgrade, uninstall.
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
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
	sampleFile  = "rag_v1alpha1_ragappliance_dgx_spark.yaml"
	sampleNS    = "default"
	operatorMgr = "rag-operator" // the operator's server-side apply field manager
	gitopsMgr   = "gitops"       // the field manager our "GitOps tool" applies with
	crdName     = "ragappliances.rag.ragstack.dev"
)

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
	// managerBinary is ./cmd/manager, built for this run: it stands for the chart's image.
	managerBinary string
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
		{"gitops", testGitOps},
		{"upgrade", testUpgrade},
		{"uninstall", testUninstall},
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

	type built struct {
		path string
		err  error
	}
	managerCh := make(chan built, 1)
	binDir := t.TempDir()
	go func() {
		p, err := cluster.BuildManager(ctx, binDir)
		managerCh <- built{p, err}
	}()

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
	m := <-managerCh
	if m.err != nil {
		t.Fatal(m.err)
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", sampleFile))
	if err != nil {
		t.Fatal(err)
	}
	e.sample = &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &e.sample.Object); err != nil {
		t.Fatal(err)
	}
	e.sample.SetNamespace(sampleNS)
	t.Logf("setup (cluster, Ollama with models, Qdrant double, manager build) took %s", time.Since(start).Round(100*time.Millisecond))

	e.managerBinary = m.path
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

// testInstall: helm install, apply the minimal sample, reach Ready with every pod Running on the
// simulated node and every model Job run for real; then wait until the variants are resident
// (the operator's last status change), so the later steps see a converged appliance.
func testInstall(ctx context.Context, t *testing.T, e *env) {
	op, err := e.cl.InstallOperator(ctx, cluster.OperatorOptions{
		ManagerBinary: e.managerBinary,
		OllamaURL:     e.ollama.URL,
		QdrantAddress: e.qdrant.Address(),
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
			t.Errorf("pod %s is %s on %q, want Running on dgx-spark-0", p.Name, p.Status.Phase, p.Spec.NodeName)
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
	// The pass is over once the manager's own metrics count a successful reconcile.
	metrics := "http://" + flagValue(e.op.Manager.Args(), "--metrics-bind-address") + "/metrics"
	e.waitFor(ctx, t, "the upgraded manager's first reconcile", func() error {
		return reconciled(ctx, metrics)
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
	// Not a leftover of the release: `helm install --create-namespace` creates the namespace
	// unlabelled and helm never deletes a namespace; the objects above are all that was in it.
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
	ra := &ragv1.RagAppliance{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: sampleNS, Name: e.sample.GetName()}, ra); err != nil {
		t.Fatal(err)
	}
	return ra
}

// waitAppliance polls the appliance until cond holds for its current generation.
func waitAppliance(ctx context.Context, t *testing.T, e *env, what string, cond func(*ragv1.RagAppliance) error) *ragv1.RagAppliance {
	t.Helper()
	var ra *ragv1.RagAppliance
	e.waitFor(ctx, t, "appliance "+what, func() error {
		ra = getAppliance(ctx, t, e)
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

// reconciled reads the manager's Prometheus metrics and succeeds once a reconcile finished
// without error.
func reconciled(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
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

// Command demo is the project's main job on a machine with no cluster: a local cluster with
// simulated DGX Spark nodes (internal/testbed/cluster: kube-apiserver, etcd,
// kube-controller-manager, kube-scheduler and KWOK), the operator installed by its Helm chart,
// the DGX Spark sample applied, and the appliances reconciled until Ready, then printed as
// `kubectl get ragappliance` with their conditions, memory budget, children and pods.
//
// The cluster keeps a real one's constraints: each Spark is tainted nvidia.com/gpu=present:
// NoSchedule (only pods that tolerate it run there, the manager's included), the namespaces
// enforce the restricted Pod Security level, and the apiserver runs
// OwnerReferencesPermissionEnforcement against the chart's RBAC.
//
// The status it prints is earned: the operator talks to a real Ollama (the project's build,
// with tiny generated models under the production base names) and to the in-process Qdrant
// double through its documented endpoint-override flags, and the model-creation Jobs really
// create the variants: their pods are held by KWOK and run here (`manager model-sync`) by a job
// runner that then reports them Succeeded, as a kubelet would. See docs/demo.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/testbed/cluster"
	"github.com/ragstack/rag-operator/internal/testbed/ollamatest"
	"github.com/ragstack/rag-operator/internal/testbed/qdrantdouble"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type config struct {
	assets, kwok, helm, ollama string
	samples, namespace         string
	nodes                      int
	wait, resident             time.Duration
	keep, verbose              bool
}

func run() error {
	var cfg config
	flag.StringVar(&cfg.assets, "assets", cluster.DefaultAssets(), "folder with kube-apiserver, etcd, kube-controller-manager and kube-scheduler (`make k8s-assets`)")
	flag.StringVar(&cfg.kwok, "kwok", cluster.DefaultKWOK(), "kwok binary (`make kwok`)")
	flag.StringVar(&cfg.helm, "helm", cluster.DefaultHelm(), "helm binary (`make helm`)")
	flag.StringVar(&cfg.ollama, "ollama", "", "ollama binary (`make ollama`; default $OLLAMA_BIN or the cached build)")
	flag.StringVar(&cfg.samples, "samples", "config/samples/rag_v1alpha1_ragappliance_dgx_spark.yaml", "RagAppliance manifest, or folder of them, to apply")
	flag.StringVar(&cfg.namespace, "namespace", "rag", "namespace to apply the samples in (created with the restricted Pod Security level)")
	flag.IntVar(&cfg.nodes, "nodes", 0, "simulated DGX Spark nodes (default: one per appliance, since each Ollama takes a node's only GPU)")
	flag.DurationVar(&cfg.wait, "wait", 90*time.Second, "how long to wait for every appliance to be Ready")
	flag.DurationVar(&cfg.resident, "resident", 30*time.Second, "then how long to wait for the variants to be resident (ModelsResident, not part of Ready); 0 skips")
	flag.BoolVar(&cfg.keep, "keep", false, "keep everything running until interrupted (prints a KUBECONFIG)")
	flag.BoolVar(&cfg.verbose, "v", false, "keep the component logs and print where they are")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d := &demo{cfg: cfg, start: time.Now()}
	err := d.run(ctx)
	d.cleanup(err != nil)
	return err
}

type demo struct {
	cfg   config
	start time.Time

	cluster *cluster.Cluster
	ollama  *ollamatest.Server
	qdrant  *qdrantdouble.Server
	op      *cluster.Operator
	c       client.Client
}

func (d *demo) step(format string, args ...any) {
	fmt.Printf("[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) cleanup(failed bool) {
	if d.op != nil {
		d.op.Stop()
	}
	if d.ollama != nil {
		d.ollama.Close()
	}
	if d.qdrant != nil {
		d.qdrant.Stop()
	}
	if d.cluster != nil {
		if failed || d.cfg.verbose {
			d.cluster.KeepLogs()
			fmt.Fprintf(os.Stderr, "component logs: %s\n", d.cluster.LogDir())
		}
		_ = d.cluster.Stop()
	}
}

func (d *demo) run(ctx context.Context) error {
	cfg := d.cfg
	// Every asset first, so a missing one fails in a second with the make target to run.
	if err := cluster.CheckAssets(cluster.Options{Assets: cfg.assets, KWOK: cfg.kwok}); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.helm); err != nil {
		return &cluster.MissingAssetError{Path: cfg.helm, Target: "helm"}
	}
	if cfg.ollama != "" {
		os.Setenv("OLLAMA_BIN", cfg.ollama)
	}
	ollamaBin, err := ollamatest.Binary()
	if err != nil {
		return fmt.Errorf("ollama binary: %v: run `make ollama` first", err)
	}
	appliances, err := readSamples(cfg.samples)
	if err != nil {
		return err
	}
	if len(appliances) == 0 {
		return fmt.Errorf("no RagAppliance manifests in %s", cfg.samples)
	}
	nodes := cfg.nodes
	if nodes == 0 {
		nodes = len(appliances)
	}

	work := filepath.Join(cacheDir(), "demo")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	// Build the manager (the chart image's binary) before any clock starts: a cold build takes
	// minutes on a loaded machine, and no deadline below is meant to absorb it.
	managerBin, err := cluster.BuildManager(ctx, work)
	if err != nil {
		return err
	}
	d.step("manager built from ./cmd/manager (%s)", managerBin)

	var spec []cluster.Node
	for i := 0; i < nodes; i++ {
		spec = append(spec, cluster.DGXSpark(fmt.Sprintf("dgx-spark-%d", i)))
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(ragv1.AddToScheme(scheme))
	d.cluster, err = cluster.Start(ctx, cluster.Options{Assets: cfg.assets, KWOK: cfg.kwok, Nodes: spec, HoldJobPods: cluster.HoldModelSync, Scheme: scheme})
	if err != nil {
		return err
	}
	d.c = d.cluster.Client()
	d.step("cluster up: kube-apiserver v%s + etcd, kube-controller-manager, kube-scheduler, KWOK %s", cluster.K8sVersion, cluster.KWOKVersion)
	var names []string
	for _, n := range spec {
		names = append(names, n.Name)
	}
	fmt.Printf("         nodes (simulated by KWOK): %s — DGX Spark: arm64, 20 CPU, 128Gi (119Gi allocatable), nvidia.com/gpu 1,\n"+
		"         labelled %s=true, tainted %s=present:NoSchedule\n", strings.Join(names, ", "), cluster.GPUPresentLabel, cluster.GPUTaintKey)
	fmt.Printf("         kube-apiserver admission adds %s\n", strings.Join(cluster.AdmissionPlugins, ", "))

	if d.ollama, err = startOllama(ctx, ollamaBin); err != nil {
		return err
	}
	if d.qdrant, err = qdrantdouble.Serve("127.0.0.1:0"); err != nil {
		return err
	}
	d.step("Ollama %s at %s (the project's CPU build; tiny generated models as %s, %s, %s)",
		ollamatest.Version, d.ollama.URL, ollamatest.ChatModel, ollamatest.EmbedModel, ollamatest.ReasoningModel)
	fmt.Printf("         Qdrant gRPC double at %s\n", d.qdrant.Address())

	d.op, err = d.cluster.InstallOperator(ctx, cluster.OperatorOptions{
		ManagerBinary: managerBin,
		OllamaURL:     d.ollama.URL,
		QdrantAddress: d.qdrant.Address(),
		// Every node is a tainted Spark: the manager pod must tolerate the taint to be scheduled.
		Tolerations: []corev1.Toleration{cluster.GPUToleration()},
	})
	if err != nil {
		return err
	}
	if err := d.printInstall(ctx); err != nil {
		return err
	}

	if err := d.cluster.CreateRestrictedNamespace(ctx, cfg.namespace); err != nil {
		return err
	}
	d.step("namespaces %s and %s enforce the restricted Pod Security level", d.op.Namespace(), cfg.namespace)
	applied, err := applyAll(ctx, d.c, appliances, cfg.namespace)
	if err != nil {
		return err
	}
	d.step("applied %s", strings.Join(applied, ", "))

	if err := d.waitAll(ctx, ragv1.ConditionReady, cfg.wait); err != nil {
		d.printAll(ctx)
		return err
	}
	d.step("every appliance is Ready")
	if cfg.resident > 0 {
		// Not part of Ready: the operator warms each variant in the background and checks
		// /api/ps again every 15 s.
		if err := d.waitAll(ctx, ragv1.ConditionModelsResident, cfg.resident); err != nil {
			d.step("variants not all resident yet: %v", err)
		} else {
			d.step("every variant is resident in Ollama with its numCtx (ModelsResident=True)")
		}
	}
	d.printAll(ctx)

	if cfg.keep {
		path := filepath.Join(os.TempDir(), "rag-operator-demo.kubeconfig")
		if err := os.WriteFile(path, d.cluster.Kubeconfig(), 0o600); err != nil {
			return err
		}
		fmt.Printf("\nEverything keeps running (manager log: %s).\n  export KUBECONFIG=%s\nCtrl-C stops it.\n", d.op.Manager.LogPath(), path)
		<-ctx.Done()
	}
	return nil
}

func cacheDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "rag-operator")
}

// printInstall shows what the chart installed and how its manager runs here.
func (d *demo) printInstall(ctx context.Context) error {
	dep := &appsv1.Deployment{}
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: d.op.Namespace(), Name: d.op.Deployment}, dep); err != nil {
		return err
	}
	pods := &corev1.PodList{}
	if err := d.c.List(ctx, pods, client.InNamespace(d.op.Namespace()), client.MatchingLabels{"control-plane": "controller-manager"}); err != nil {
		return err
	}
	where := "no pod"
	if len(pods.Items) > 0 {
		where = fmt.Sprintf("pod %s %s on %s", pods.Items[0].Name, pods.Items[0].Status.Phase, pods.Items[0].Spec.NodeName)
	}
	d.step("helm install %s charts/rag-operator -n %s --wait: deployment/%s %d/%d available (%s)",
		d.op.Release(), d.op.Namespace(), dep.Name, dep.Status.AvailableReplicas, *dep.Spec.Replicas, where)
	fmt.Printf("         KWOK only pretends to run that pod; its command line runs here, as ServiceAccount %s:\n", d.op.Manager.ServiceAccount())
	args := d.op.Manager.Args()
	fmt.Printf("           %s \\\n             %s\n", filepath.Base(args[0]), strings.Join(args[1:], " \\\n             "))
	fmt.Println("         (chart args as rendered; bind addresses moved to free loopback ports, --leader-election-namespace added: a pod reads it from its mount)")
	return nil
}

// waitAll waits until every appliance reports the condition True for its generation.
func (d *demo) waitAll(ctx context.Context, condType string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		list := &ragv1.RagApplianceList{}
		var pending []string
		err := d.c.List(ctx, list, client.InNamespace(d.cfg.namespace))
		if err == nil {
			for _, ra := range list.Items {
				c := meta.FindStatusCondition(ra.Status.Conditions, condType)
				switch {
				case c == nil || ra.Status.ObservedGeneration != ra.Generation:
					pending = append(pending, ra.Name+": not reported yet")
				case c.Status != metav1.ConditionTrue:
					pending = append(pending, fmt.Sprintf("%s: %s=%s (%s) %s", ra.Name, condType, c.Status, c.Reason, c.Message))
				}
			}
			if len(list.Items) > 0 && len(pending) == 0 {
				return nil
			}
		}
		if herr := d.cluster.Healthy(); herr != nil {
			return herr
		}
		if merr := d.op.Manager.Err(); merr != nil {
			return merr
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				msg := fmt.Sprintf("not every appliance is %s after %s: %s", condType, timeout, strings.Join(pending, "; "))
				if jerr := d.op.Jobs.Err(); jerr != nil {
					msg += fmt.Sprintf(" (job runner: %v)", jerr)
				}
				return fmt.Errorf("%s; manager log: %s", msg, d.op.Manager.LogPath())
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readSamples reads the RagAppliance documents of a file, or of a folder's *.yaml files
// (kustomization excluded) in file order.
func readSamples(path string) ([]*unstructured.Unstructured, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if fi.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.yaml")); err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	var out []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if u.GetKind() != "RagAppliance" {
				return nil, fmt.Errorf("%s: a %s; the demo applies RagAppliances only", f, u.GetKind())
			}
			out = append(out, u)
		}
	}
	return out, nil
}

// applyAll server-side applies the manifests, as `kubectl apply --server-side` would.
func applyAll(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, namespace string) ([]string, error) {
	var applied []string
	for _, u := range objs {
		u = u.DeepCopy()
		u.SetNamespace(namespace)
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("apply %s: %w", u.GetName(), err)
		}
		applied = append(applied, "ragappliance/"+u.GetName())
	}
	return applied, nil
}

func (d *demo) printAll(ctx context.Context) {
	fmt.Println("\n$ kubectl get ragappliance -o wide")
	if err := printTable(ctx, d.cluster.RESTConfig(), d.cfg.namespace); err != nil {
		fmt.Println("  ", err)
	}
	if err := d.printDetails(ctx); err != nil {
		fmt.Println("  ", err)
	}
	d.printOllamaEnv(ctx)
}

// printTable asks the API server for its Table rendering, so the columns are exactly the CRD's
// printer columns that kubectl shows.
func printTable(ctx context.Context, cfg *rest.Config, namespace string) error {
	rc := rest.CopyConfig(cfg)
	rc.GroupVersion = &ragv1.GroupVersion
	rc.APIPath = "/apis"
	rc.NegotiatedSerializer = serializer.NewCodecFactory(runtime.NewScheme()).WithoutConversion()
	rclient, err := rest.RESTClientFor(rc)
	if err != nil {
		return err
	}
	raw, err := rclient.Get().Namespace(namespace).Resource("ragappliances").Param("includeObject", "None").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		return err
	}
	table := &metav1.Table{}
	if err := yaml.Unmarshal(raw, table); err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	var head []string
	for _, col := range table.ColumnDefinitions {
		head = append(head, strings.ToUpper(col.Name))
	}
	fmt.Fprintln(w, strings.Join(head, "\t"))
	for _, row := range table.Rows {
		var cells []string
		for _, cell := range row.Cells {
			cells = append(cells, fmt.Sprint(cell))
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	return w.Flush()
}

func (d *demo) printDetails(ctx context.Context) error {
	list := &ragv1.RagApplianceList{}
	if err := d.c.List(ctx, list, client.InNamespace(d.cfg.namespace)); err != nil {
		return err
	}
	for _, ra := range list.Items {
		fmt.Printf("\nragappliance/%s  (generation %d, observed %d, Ollama %s)\n", ra.Name, ra.Generation, ra.Status.ObservedGeneration, ra.Status.OllamaVersion)
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "  CONDITION\tSTATUS\tREASON\tMESSAGE")
		for _, c := range ra.Status.Conditions {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.Message)
		}
		_ = w.Flush()
		if len(ra.Status.Models) > 0 {
			fmt.Println("  models:")
			w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			for _, m := range ra.Status.Models {
				fmt.Fprintf(w, "    %s\tready=%t\tresident=%t\t%s\t%s\n", m.Name, m.Ready, m.Resident, short(m.Digest, 19), strings.Join(m.Parameters, " "))
			}
			_ = w.Flush()
		}
		if mem := ra.Status.Memory; mem != nil {
			fmt.Printf("  memory budget: total %s (%s), used %s, headroom %s, fits %t\n", mem.Total, mem.TotalSource, mem.Used, mem.Headroom, mem.Fits)
			w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "    COMPONENT\tWEIGHTS\tKV CACHE\tTOTAL\tSOURCE\tDETAIL")
			for _, r := range mem.Rows {
				fmt.Fprintf(w, "    %s\t%s\t%s\t%s\t%s\t%s\n", r.Component, dash(r.Weights), dash(r.KVCache), r.Total, dash(r.Source), r.Detail)
			}
			_ = w.Flush()
		}
		fmt.Printf("  endpoints: ollama %s · qdrant %s · rag-server %s\n", ra.Status.Endpoints.Ollama, ra.Status.Endpoints.QdrantGRPC, ra.Status.Endpoints.RagServer)
		fmt.Println("  children:")
		for _, gvk := range childKinds {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(gvk)
			if err := d.c.List(ctx, l, client.InNamespace(ra.Namespace), client.MatchingLabels{"app.kubernetes.io/instance": ra.Name}); err != nil {
				return err
			}
			for _, o := range l.Items {
				fmt.Printf("    %s/%s%s\n", strings.ToLower(strings.TrimSuffix(gvk.Kind, "List")), o.GetName(), childState(&o))
			}
		}
		pods := &corev1.PodList{}
		if err := d.c.List(ctx, pods, client.InNamespace(ra.Namespace), client.MatchingLabels{"app.kubernetes.io/instance": ra.Name}); err != nil {
			return err
		}
		fmt.Println("  pods:")
		w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, p := range pods.Items {
			why := ""
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					why = c.Reason + ": " + c.Message
				}
			}
			fmt.Fprintf(w, "    %s\t%s\t%s\t%s\n", p.Name, p.Status.Phase, dash(p.Spec.NodeName), why)
		}
		_ = w.Flush()
		fmt.Println("  model Jobs (pods held by KWOK, run here by the job runner; the operator deletes each Job once it has verified the variant):")
		w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, r := range d.op.Jobs.Runs() {
			if r.Namespace != ra.Namespace || !strings.HasPrefix(r.Job, ra.Name+"-model-") {
				continue
			}
			phase := "Succeeded"
			if r.ExitCode != 0 {
				phase = fmt.Sprintf("Failed (exit %d)", r.ExitCode)
			}
			fmt.Fprintf(w, "    job/%s\t%s\t%.1fs\t%s\n", r.Job, phase, r.Finished.Sub(r.Started).Seconds(), lastLine(r.Output))
		}
		_ = w.Flush()
	}
	return nil
}

// printOllamaEnv compares the local Ollama's settings with what the operator rendered.
func (d *demo) printOllamaEnv(ctx context.Context) {
	deps := &appsv1.DeploymentList{}
	if err := d.c.List(ctx, deps, client.InNamespace(d.cfg.namespace), client.MatchingLabels{"app.kubernetes.io/name": "ollama"}); err != nil || len(deps.Items) == 0 {
		return
	}
	var diffs []string
	for _, dep := range deps.Items {
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			if !strings.HasPrefix(e.Name, "OLLAMA_") || e.Name == "OLLAMA_HOST" || e.Name == "OLLAMA_MODELS" {
				continue
			}
			if _, known := ollamaDeviations[e.Name]; known {
				continue
			}
			if ollamaEnv[e.Name] != e.Value {
				diffs = append(diffs, fmt.Sprintf("%s renders %s=%q, the local Ollama has %q", dep.Name, e.Name, e.Value, ollamaEnv[e.Name]))
			}
		}
	}
	fmt.Printf("\nThe local Ollama runs with the OLLAMA_* settings the operator rendered into its Deployments:\n  %s\n", strings.Join(sortedEnv(ollamaEnv), " "))
	for _, k := range sortedKeys(ollamaDeviations) {
		fmt.Printf("  except %s: %s\n", k, ollamaDeviations[k])
	}
	for _, d := range diffs {
		fmt.Printf("  differs: %s\n", d)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// childState is a short readiness note for workloads and claims.
func childState(o *unstructured.Unstructured) string {
	switch o.GetKind() {
	case "Deployment", "StatefulSet":
		ready, _, _ := unstructured.NestedInt64(o.Object, "status", "readyReplicas")
		want, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
		return fmt.Sprintf("  %d/%d ready", ready, want)
	case "PersistentVolumeClaim":
		phase, _, _ := unstructured.NestedString(o.Object, "status", "phase")
		vol, _, _ := unstructured.NestedString(o.Object, "spec", "volumeName")
		if vol != "" {
			return "  " + phase + " to " + vol
		}
		return "  " + phase
	}
	return ""
}

var childKinds = []schema.GroupVersionKind{
	{Group: "apps", Version: "v1", Kind: "DeploymentList"},
	{Group: "apps", Version: "v1", Kind: "StatefulSetList"},
	{Version: "v1", Kind: "ServiceList"},
	{Version: "v1", Kind: "ConfigMapList"},
	{Version: "v1", Kind: "PersistentVolumeClaimList"},
	{Version: "v1", Kind: "SecretList"},
	{Group: "batch", Version: "v1", Kind: "JobList"},
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

var sha256Hex = regexp.MustCompile(`\b([0-9a-f]{12})[0-9a-f]{52}\b`)

// lastLine is a run's last output line, with digests shortened.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return sha256Hex.ReplaceAllString(s, "$1…")
}

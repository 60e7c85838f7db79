// Command demo is the project's main job on a machine with no cluster: it starts a local
// control plane (kube-apiserver and etcd built from the Go module proxy by
// hack/build-k8s-bundle.sh), installs the CRD, runs the operator, applies config/samples and
// prints the appliances as `kubectl get ragappliance` would, with their conditions and children.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/controllers"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	cache, _ := os.UserCacheDir()
	assets := flag.String("assets", envOr("KUBEBUILDER_ASSETS", filepath.Join(cache, "rag-operator", "k8s-v1.37.2")), "folder with kube-apiserver and etcd")
	samples := flag.String("samples", "config/samples", "folder of manifests to apply")
	namespace := flag.String("namespace", "default", "namespace to apply the samples in")
	wait := flag.Duration("wait", 20*time.Second, "how long to wait for the operator to report status")
	keep := flag.Bool("keep", false, "keep the control plane and operator running until interrupted (prints a kubeconfig path)")
	verbose := flag.Bool("v", false, "show the operator's logs")
	flag.Parse()

	level := zap.Level(zapLevel(*verbose))
	ctrl.SetLogger(zap.New(level))

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(ragv1.AddToScheme(scheme))

	fmt.Printf("Starting a local control plane from %s\n", *assets)
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{"config/crd/bases"},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: *assets,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start control plane (run `make k8s-assets` first?): %w", err)
	}
	defer func() { _ = env.Stop() }()
	fmt.Printf("  kube-apiserver at %s, CRD ragappliances.rag.ragstack.dev installed\n", cfg.Host)

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := controllers.Setup(mgr, controllers.Options{}); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	fmt.Println("  operator started")

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	applied, err := applyFolder(ctx, c, *samples, *namespace)
	if err != nil {
		return err
	}
	fmt.Printf("Applied %s\n", strings.Join(applied, ", "))

	deadline := time.Now().Add(*wait)
	for time.Now().Before(deadline) && !allReported(ctx, c, *namespace) {
		time.Sleep(200 * time.Millisecond)
	}

	fmt.Println("\n$ kubectl get ragappliance -o wide")
	if err := printTable(ctx, cfg, *namespace); err != nil {
		return err
	}
	if err := printDetails(ctx, c, *namespace); err != nil {
		return err
	}
	fmt.Println("\nNo kubelet runs here, so workloads stay Progressing: the conditions above say exactly that.")

	if *keep {
		path, err := writeKubeconfig(env)
		if err != nil {
			return err
		}
		fmt.Printf("\nControl plane and operator keep running; KUBECONFIG=%s. Ctrl-C stops them.\n", path)
		<-ctx.Done()
	}
	return nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func zapLevel(verbose bool) zapcore.Level {
	if verbose {
		return zapcore.DebugLevel
	}
	return zapcore.DPanicLevel // the demo's own output tells the story
}

// applyFolder server-side applies every YAML document in the folder's *.yaml files (except a
// kustomization) in name order.
func applyFolder(ctx context.Context, c client.Client, dir, namespace string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var applied []string
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
			u.SetNamespace(namespace)
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("demo"), client.ForceOwnership); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			applied = append(applied, strings.ToLower(u.GetKind())+"/"+u.GetName())
		}
	}
	return applied, nil
}

func allReported(ctx context.Context, c client.Client, namespace string) bool {
	list := &ragv1.RagApplianceList{}
	if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil || len(list.Items) == 0 {
		return false
	}
	for _, ra := range list.Items {
		if ra.Status.ObservedGeneration != ra.Generation || meta.FindStatusCondition(ra.Status.Conditions, ragv1.ConditionReady) == nil {
			return false
		}
	}
	return true
}

// printTable asks the API server for its Table rendering, so the columns are exactly the CRD's
// printer columns that kubectl shows.
func printTable(ctx context.Context, cfg *rest.Config, namespace string) error {
	rc := rest.CopyConfig(cfg)
	rc.GroupVersion = &ragv1.GroupVersion
	rc.APIPath = "/apis"
	rc.NegotiatedSerializer = serializer.NewCodecFactory(runtime.NewScheme()).WithoutConversion()
	client, err := rest.RESTClientFor(rc)
	if err != nil {
		return err
	}
	raw, err := client.Get().Namespace(namespace).Resource("ragappliances").
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

func printDetails(ctx context.Context, c client.Client, namespace string) error {
	list := &ragv1.RagApplianceList{}
	if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return err
	}
	for _, ra := range list.Items {
		fmt.Printf("\nragappliance/%s  (generation %d, observed %d)\n", ra.Name, ra.Generation, ra.Status.ObservedGeneration)
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "  CONDITION\tSTATUS\tREASON\tMESSAGE")
		for _, cond := range ra.Status.Conditions {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", cond.Type, cond.Status, cond.Reason, cond.Message)
		}
		_ = w.Flush()
		fmt.Printf("  endpoints: ollama %s · qdrant %s · rag-server %s\n", ra.Status.Endpoints.Ollama, ra.Status.Endpoints.QdrantGRPC, ra.Status.Endpoints.RagServer)
		if len(ra.Status.IgnoredSettings) > 0 {
			fmt.Printf("  ignored by this Ollama version: %s\n", strings.Join(ra.Status.IgnoredSettings, ", "))
		}
		fmt.Println("  children:")
		for _, gvk := range childKinds {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(gvk)
			if err := c.List(ctx, l, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/instance": ra.Name}); err != nil {
				return err
			}
			for _, o := range l.Items {
				fmt.Printf("    %s/%s\n", strings.ToLower(strings.TrimSuffix(gvk.Kind, "List")), o.GetName())
			}
		}
	}
	return nil
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

func writeKubeconfig(env *envtest.Environment) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(os.TempDir(), "rag-operator-demo.kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

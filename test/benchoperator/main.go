// Command benchoperator measures the operator on the test control plane: it applies N
// appliances and reports the time until every child exists, the API writes a steady-state
// reconcile sends (the design says 0), and the manager's peak memory.
//
// Then it adds unrelated ConfigMaps and Pods (other namespaces, not labelled as ours) and starts
// the manager twice more, each in its own process so the resident sets are its own: once with
// an unscoped cache (controller-runtime's default, cache.Options{}: every ConfigMap, Pod, … of
// the cluster is listed and held) and once with controllers.CacheOptions (informers restricted to
// app.kubernetes.io/managed-by=rag-operator), and reports both managers' RSS and their ratio.
//
//	go run ./test/benchoperator -n 50 -unrelated 5000 -out docs/benchmarks
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/controllers"
)

// writeCounter counts the manager's mutating API requests.
type writeCounter struct {
	next   http.RoundTripper
	writes atomic.Int64
	mu     sync.Mutex
	byVerb map[string]int64
}

func (w *writeCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.writes.Add(1)
		w.mu.Lock()
		w.byVerb[req.Method+" "+resourceOf(req.Method, req.URL.Path)]++
		w.mu.Unlock()
	}
	return w.next.RoundTrip(req)
}

// resourceOf names the resource of a request path (…/<resource>/<name>[/status], or
// …/<resource> for a create).
func resourceOf(method, path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if method == http.MethodPost {
		return parts[len(parts)-1]
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] == "status" {
			return parts[i-2] + "/status"
		}
	}
	if len(parts) >= 2 {
		return parts[len(parts)-2]
	}
	return path
}

type result struct {
	Appliances               int              `json:"appliances"`
	ChildrenPerAppliance     int              `json:"childrenPerAppliance"`
	TimeToAllChildrenSec     float64          `json:"timeToAllChildrenSeconds"`
	TimeToAllStatusSec       float64          `json:"timeToAllStatusSeconds"`
	ConvergenceWrites        int64            `json:"convergenceWrites"`
	SteadyReconciles         int              `json:"steadyStateReconciles"`
	SteadyWrites             int64            `json:"steadyStateWrites"`
	WritesPerSteadyRecon     float64          `json:"writesPerSteadyStateReconcile"`
	SteadyReconcileMillisP50 float64          `json:"steadyStateReconcileMillisP50"`
	PeakRSSMiB               float64          `json:"managerPeakRSSMiB"`
	HeapMiB                  float64          `json:"managerHeapMiB"`
	WritesByVerb             map[string]int64 `json:"convergenceWritesByVerb"`
	// The cache comparison: the same cluster (the appliances above plus the unrelated objects),
	// the manager in a process of its own, unscoped and scoped cache.
	UnrelatedConfigMaps int          `json:"unrelatedConfigMaps"`
	UnrelatedPods       int          `json:"unrelatedPods"`
	UnrelatedSeconds    float64      `json:"unrelatedCreateSeconds"`
	Unscoped            *cacheResult `json:"unscopedCache"`
	Scoped              *cacheResult `json:"scopedCache"`
	PeakRSSRatio        float64      `json:"scopedToUnscopedPeakRSS"`
	GoVersion           string       `json:"goVersion"`
	CPUs                int          `json:"cpus"`
	Date                string       `json:"date"`
}

// cacheResult is what a manager process (-child) reports once it has reconciled every appliance
// and gone idle.
type cacheResult struct {
	Cache            string  `json:"cache"`
	PeakRSSMiB       float64 `json:"peakRSSMiB"`
	RSSMiB           float64 `json:"rssMiB"`
	HeapMiB          float64 `json:"heapInUseAfterGCMiB"`
	CachedConfigMaps int     `json:"cachedConfigMaps"`
	CachedPods       int     `json:"cachedPods"`
	Reconciles       float64 `json:"reconciles"`
	SecondsToIdle    float64 `json:"secondsToIdle"`
}

func main() {
	n := flag.Int("n", 50, "appliances to apply")
	unrelated := flag.Int("unrelated", 5000, "unrelated ConfigMaps, and as many Pods, added before the cache comparison (0: skip it)")
	out := flag.String("out", "", "folder for operator.json and operator.md (empty: stdout only)")
	cacheDir, _ := os.UserCacheDir()
	assets := flag.String("assets", envOr("KUBEBUILDER_ASSETS", filepath.Join(cacheDir, "rag-operator", "k8s-v1.37.2")), "kube-apiserver and etcd")
	child := flag.String("child", "", "internal: run only a manager with this cache (scoped, unscoped) against -child-kubeconfig and print its cacheResult")
	kubeconfig := flag.String("child-kubeconfig", "", "internal: the cluster of a -child manager")
	flag.Parse()
	var err error
	if *child != "" {
		err = runChild(*child, *kubeconfig, *n)
	} else {
		err = run(*n, *unrelated, *assets, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchoperator:", err)
		os.Exit(1)
	}
}

func run(n, unrelated int, assets, out string) error {
	scheme := kruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(ragv1.AddToScheme(scheme))
	env := &envtest.Environment{CRDDirectoryPaths: []string{"config/crd/bases"}, ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()

	counter := &writeCounter{byVerb: map[string]int64{}}
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter }
	mgrCfg.QPS, mgrCfg.Burst = 200, 400
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: controllers.CacheOptions(nil)})
	if err != nil {
		return err
	}
	r := &controllers.RagApplianceReconciler{Client: mgr.GetClient(), Scheme: scheme, APIReader: mgr.GetAPIReader(),
		External: controllers.NewExternalClients("", "")}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgrCtx, stopMgr := context.WithCancel(ctx)
	defer stopMgr()
	go func() { _ = mgr.Start(mgrCtx) }()

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}
	if err := c.Create(ctx, ns); err != nil {
		return err
	}
	mgr.GetCache().WaitForCacheSync(ctx)
	counter.writes.Store(0)

	start := time.Now()
	for i := range n {
		ra := &ragv1.RagAppliance{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("rag-%02d", i)}}
		// The API server fills in every default; fields a Go client must set explicitly:
		ra.Spec.Ollama.FlashAttention, ra.Spec.Ollama.MultiuserCache, ra.Spec.Ollama.GPUs = true, true, 1
		ra.Spec.RagServer.Replicas = 1
		ra.Spec.RagServer.Tokens = ragv1.TokenBudget{Context: 6000, History: 1500, System: 500, Response: 192}
		ra.Spec.RagServer.Chunking = ragv1.ChunkingSpec{Size: 200, Overlap: 40}
		ra.Spec.RagServer.Concurrency.WarmingMaxConcurrentQueries = 3
		ra.Spec.Qdrant.Collection.HNSW.M = 16
		ra.Spec.Qdrant.Collection.Quantization.AlwaysRAM = true
		ra.Spec.Qdrant.Collection.Optimizers = ragv1.OptimizersSpec{IndexingThreshold: 50000, DefaultSegmentNumber: 2, MemmapThreshold: 200000}
		if err := c.Create(ctx, ra); err != nil {
			return fmt.Errorf("create %s: %w", ra.Name, err)
		}
	}
	const childrenPer = 11 // 2 Deployments, 1 StatefulSet, 4 Services, 1 ConfigMap, 2 PVCs, 1 Secret
	var childrenAt, statusAt time.Duration
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if childrenAt == 0 && countChildren(ctx, c) >= n*childrenPer {
			childrenAt = time.Since(start)
		}
		if childrenAt != 0 && allObserved(ctx, c, n) {
			statusAt = time.Since(start)
			break
		}
	}
	if statusAt == 0 {
		return fmt.Errorf("appliances did not converge in 5 minutes")
	}
	time.Sleep(2 * time.Second) // let our own writes' watch events settle
	convergence := counter.writes.Load()
	counter.mu.Lock()
	byVerb := map[string]int64{}
	for k, v := range counter.byVerb {
		byVerb[k] = v
	}
	counter.mu.Unlock()

	// Steady state: reconcile every appliance 5 times and count what reaches the API server.
	counter.writes.Store(0)
	var durations []time.Duration
	for range 5 {
		for i := range n {
			t0 := time.Now()
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "bench", Name: fmt.Sprintf("rag-%02d", i)}}); err != nil {
				return err
			}
			durations = append(durations, time.Since(t0))
		}
	}
	steady := counter.writes.Load()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res := result{
		Appliances: n, ChildrenPerAppliance: childrenPer,
		TimeToAllChildrenSec: childrenAt.Seconds(), TimeToAllStatusSec: statusAt.Seconds(),
		ConvergenceWrites: convergence, WritesByVerb: byVerb,
		SteadyReconciles: 5 * n, SteadyWrites: steady, WritesPerSteadyRecon: float64(steady) / float64(5*n),
		SteadyReconcileMillisP50: float64(median(durations).Microseconds()) / 1000,
		PeakRSSMiB:               procStatusMiB("VmHWM"), HeapMiB: float64(ms.HeapInuse) / (1 << 20),
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Date: time.Now().UTC().Format(time.RFC3339),
	}
	stopMgr() // the cache comparison runs managers of its own

	if unrelated > 0 {
		t0 := time.Now()
		if err := createUnrelated(ctx, cfg, scheme, unrelated); err != nil {
			return err
		}
		res.UnrelatedConfigMaps, res.UnrelatedPods, res.UnrelatedSeconds = unrelated, unrelated, time.Since(t0).Seconds()
		fmt.Fprintf(os.Stderr, "benchoperator: %d unrelated ConfigMaps and %d Pods created in %.1f s\n", unrelated, unrelated, res.UnrelatedSeconds)
		kubeconfig, err := writeKubeconfig(env, cfg)
		if err != nil {
			return err
		}
		defer os.Remove(kubeconfig)
		if res.Unscoped, err = startChild("unscoped", kubeconfig, n); err != nil {
			return err
		}
		if res.Scoped, err = startChild("scoped", kubeconfig, n); err != nil {
			return err
		}
		res.PeakRSSRatio = res.Scoped.PeakRSSMiB / res.Unscoped.PeakRSSMiB
		fmt.Fprintf(os.Stderr, "benchoperator: manager peak RSS with %d unrelated ConfigMaps and Pods: unscoped cache %.1f MiB, scoped cache %.1f MiB (%.2f×)\n",
			unrelated, res.Unscoped.PeakRSSMiB, res.Scoped.PeakRSSMiB, res.PeakRSSRatio)
	}

	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(b))
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "operator.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	md := fmt.Sprintf(`# Operator benchmark

%d appliances applied at once to a real kube-apiserver + etcd (envtest), the manager in-process.
Machine: %d CPUs, %s, %s. Reproduce: `+"`make bench-operator`"+`.

| figure | value |
|---|---|
| time until all %d children exist | %.2f s |
| time until every appliance reports status for its generation | %.2f s |
| API writes to converge (all kinds, incl. status) | %d |
| steady-state reconciles | %d |
| API writes in those reconciles | %d (%.2f per reconcile; the design says 0) |
| steady-state reconcile, median | %.2f ms |
| manager peak RSS (process incl. test client) | %.1f MiB |
| manager heap in use at the end | %.1f MiB |
`, n, res.CPUs, res.GoVersion, res.Date, n*childrenPer, res.TimeToAllChildrenSec, res.TimeToAllStatusSec, convergence,
		res.SteadyReconciles, steady, res.WritesPerSteadyRecon, res.SteadyReconcileMillisP50, res.PeakRSSMiB, res.HeapMiB)
	if u, sc := res.Unscoped, res.Scoped; u != nil && sc != nil {
		md += fmt.Sprintf(`
## Cache scope: %d unrelated ConfigMaps and %d Pods in the cluster

The same cluster (the %d appliances above, converged, plus %d ConfigMaps and %d Pods in 10 other
namespaces, without the app.kubernetes.io/managed-by=rag-operator label: ConfigMaps of 1 KiB,
single-container Pods, never scheduled), then the manager started twice, each time in a process
of its own (`+"`benchoperator -child`"+`), until it has reconciled every appliance and its queue is
empty. Before: the cache controller-runtime builds by default (`+"`cache.Options{}`"+`), which lists and
watches every object of each kind the manager reads. After: `+"`controllers.CacheOptions(nil)`"+`
(cmd/manager), whose informers of owned kinds and pods select only managed-by=rag-operator.

| | before: unscoped cache | after: scoped cache |
|---|---|---|
| manager peak RSS | %.1f MiB | %.1f MiB (%.2f× before) |
| manager RSS when idle | %.1f MiB | %.1f MiB |
| heap in use after a GC | %.1f MiB | %.1f MiB |
| ConfigMaps in the cache | %d | %d |
| Pods in the cache | %d | %d |
| reconciles until idle | %.0f | %.0f |
| start to idle | %.1f s | %.1f s |

The chart's memory limit is 256Mi.
`, res.UnrelatedConfigMaps, res.UnrelatedPods, n, res.UnrelatedConfigMaps, res.UnrelatedPods,
			u.PeakRSSMiB, sc.PeakRSSMiB, res.PeakRSSRatio, u.RSSMiB, sc.RSSMiB, u.HeapMiB, sc.HeapMiB,
			u.CachedConfigMaps, sc.CachedConfigMaps, u.CachedPods, sc.CachedPods, u.Reconciles, sc.Reconciles,
			u.SecondsToIdle, sc.SecondsToIdle)
	}
	return os.WriteFile(filepath.Join(out, "operator.md"), []byte(md), 0o644)
}

// unrelatedNamespaces hold the objects that are not the operator's.
const unrelatedNamespaces = 10

// createUnrelated creates count ConfigMaps and count Pods, spread over unrelatedNamespaces
// namespaces, none labelled as the operator's.
func createUnrelated(ctx context.Context, cfg *rest.Config, scheme *kruntime.Scheme, count int) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	for i := range unrelatedNamespaces {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%02d", i)}}); err != nil {
			return err
		}
	}
	payload := strings.Repeat("x", 1024)
	objs := make(chan client.Object)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for o := range objs {
				if err := c.Create(ctx, o); err != nil {
					select {
					case errs <- fmt.Errorf("create %T %s: %w", o, o.GetName(), err):
					default:
					}
				}
			}
		})
	}
	for i := range count {
		ns := fmt.Sprintf("unrelated-%02d", i%unrelatedNamespaces)
		l := map[string]string{"app.kubernetes.io/name": fmt.Sprintf("other-%d", i%100), "app.kubernetes.io/managed-by": "someone-else"}
		objs <- &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%05d", i), Labels: l},
			Data: map[string]string{"payload": payload}}
		objs <- &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("pod-%05d", i), Labels: l},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "registry.example.com/other/app:1.0",
				Env: []corev1.EnvVar{{Name: "MODE", Value: "production"}, {Name: "INDEX", Value: fmt.Sprint(i)}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}},
			}}}}
	}
	close(objs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// writeKubeconfig writes a kubeconfig of an envtest admin user for the -child managers.
func writeKubeconfig(env *envtest.Environment, cfg *rest.Config) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "bench-manager", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "benchoperator-kubeconfig-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.Write(data)
	return f.Name(), err
}

// startChild runs this program as a -child manager process and decodes what it reports.
func startChild(mode, kubeconfig string, n int) (*cacheResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-child", mode, "-child-kubeconfig", kubeconfig, "-n", fmt.Sprint(n))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s manager: %w", mode, err)
	}
	res := &cacheResult{}
	if err := json.Unmarshal(out, res); err != nil {
		return nil, fmt.Errorf("%s manager printed %q: %w", mode, out, err)
	}
	return res, nil
}

// runChild is one manager, as cmd/manager builds it but for the cache options under test: it
// starts, reconciles every appliance (a restarted manager applies each child once), and reports
// its memory once its queue has stayed empty for 3 s.
func runChild(mode, kubeconfig string, n int) error {
	var opts cache.Options
	switch mode {
	case "unscoped":
	case "scoped":
		opts = controllers.CacheOptions(nil)
	default:
		return fmt.Errorf("-child %q: want scoped or unscoped", mode)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	scheme := kruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(ragv1.AddToScheme(scheme))
	start := time.Now()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Cache: opts})
	if err != nil {
		return err
	}
	if err := controllers.Setup(mgr, controllers.Options{}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("cache did not sync")
	}
	// The reconciler reads the pods of its workloads through the cache; make sure the informer
	// exists in both runs whatever the reconcile path took.
	if _, err := mgr.GetCache().GetInformer(ctx, &corev1.Pod{}); err != nil {
		return err
	}
	var reconciles float64
	idleSince := time.Time{}
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("manager stopped: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("not idle after %d reconciles: %w", int(reconciles), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		var busy bool
		reconciles, busy = controllerActivity("ragappliance")
		switch {
		case reconciles < float64(n) || busy:
			idleSince = time.Time{}
		case idleSince.IsZero():
			idleSince = time.Now()
		}
		if !idleSince.IsZero() && time.Since(idleSince) > 3*time.Second {
			break
		}
	}
	res := &cacheResult{Cache: mode, Reconciles: reconciles, SecondsToIdle: idleSince.Sub(start).Seconds()}
	cms, pods := &corev1.ConfigMapList{}, &corev1.PodList{}
	if err := mgr.GetCache().List(ctx, cms); err != nil {
		return err
	}
	if err := mgr.GetCache().List(ctx, pods); err != nil {
		return err
	}
	res.CachedConfigMaps, res.CachedPods = len(cms.Items), len(pods.Items)
	cms, pods = nil, nil
	res.PeakRSSMiB, res.RSSMiB = procStatusMiB("VmHWM"), procStatusMiB("VmRSS")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapMiB = float64(ms.HeapInuse) / (1 << 20)
	return json.NewEncoder(os.Stdout).Encode(res)
}

// controllerActivity reads controller-runtime's metrics of one controller: reconciles so far,
// and whether anything is queued or being reconciled.
func controllerActivity(name string) (reconciles float64, busy bool) {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0, true
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			var mine bool
			for _, l := range m.GetLabel() {
				if (l.GetName() == "controller" || l.GetName() == "name") && l.GetValue() == name {
					mine = true
				}
			}
			if !mine {
				continue
			}
			switch mf.GetName() {
			case "controller_runtime_reconcile_total":
				reconciles += m.GetCounter().GetValue()
			case "workqueue_depth", "controller_runtime_active_workers":
				busy = busy || m.GetGauge().GetValue() > 0
			}
		}
	}
	return reconciles, busy
}

func countChildren(ctx context.Context, c client.Client) int {
	total := 0
	lists := []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{},
		&corev1.PersistentVolumeClaimList{}, &corev1.SecretList{}}
	for _, l := range lists {
		if err := c.List(ctx, l, client.InNamespace("bench"), client.HasLabels{"app.kubernetes.io/instance"}); err == nil {
			total += len(itemsOf(l))
		}
	}
	return total
}

func itemsOf(l client.ObjectList) []any {
	switch t := l.(type) {
	case *appsv1.DeploymentList:
		return anys(t.Items)
	case *appsv1.StatefulSetList:
		return anys(t.Items)
	case *corev1.ServiceList:
		return anys(t.Items)
	case *corev1.ConfigMapList:
		return anys(t.Items)
	case *corev1.PersistentVolumeClaimList:
		return anys(t.Items)
	case *corev1.SecretList:
		return anys(t.Items)
	}
	return nil
}

func anys[T any](in []T) []any {
	out := make([]any, len(in))
	for i := range in {
		out[i] = in[i]
	}
	return out
}

func allObserved(ctx context.Context, c client.Client, n int) bool {
	list := &ragv1.RagApplianceList{}
	if err := c.List(ctx, list, client.InNamespace("bench")); err != nil || len(list.Items) != n {
		return false
	}
	for _, ra := range list.Items {
		if ra.Status.ObservedGeneration != ra.Generation || len(ra.Status.Conditions) == 0 {
			return false
		}
	}
	return true
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// procStatusMiB reads a size from /proc/self/status: VmHWM is the process's peak resident set,
// VmRSS its current one.
func procStatusMiB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

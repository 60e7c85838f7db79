// Command benchoperator measures the operator on the test control plane: it applies N
// appliances and reports the time until every child exists, the API writes a steady-state
// reconcile sends (the design says 0), and the manager's peak memory.
//
//	go run ./test/benchoperator -n 50 -out docs/benchmarks
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
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
	GoVersion                string           `json:"goVersion"`
	CPUs                     int              `json:"cpus"`
	Date                     string           `json:"date"`
}

func main() {
	n := flag.Int("n", 50, "appliances to apply")
	out := flag.String("out", "", "folder for operator.json and operator.md (empty: stdout only)")
	cache, _ := os.UserCacheDir()
	assets := flag.String("assets", envOr("KUBEBUILDER_ASSETS", filepath.Join(cache, "rag-operator", "k8s-v1.37.2")), "kube-apiserver and etcd")
	flag.Parse()
	if err := run(*n, *assets, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchoperator:", err)
		os.Exit(1)
	}
}

func run(n int, assets, out string) error {
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
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
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
	go func() { _ = mgr.Start(ctx) }()

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
		PeakRSSMiB:               peakRSSMiB(), HeapMiB: float64(ms.HeapInuse) / (1 << 20),
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Date: time.Now().UTC().Format(time.RFC3339),
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
	return os.WriteFile(filepath.Join(out, "operator.md"), []byte(md), 0o644)
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

// peakRSSMiB is VmHWM: the process's peak resident set.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
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

// Package cluster runs a local Kubernetes cluster with simulated nodes, for the demo and the
// end-to-end tests, on machines with no Docker, no kind and no kubelet.
//
// It is the envtest control plane (kube-apiserver and etcd from the project's bundle, built by
// hack/build-k8s-bundle.sh) plus kube-controller-manager and kube-scheduler from the same bundle
// and KWOK (hack/build-kwok.sh), which plays the kubelet of fake nodes: pods are scheduled for
// real, then KWOK reports them Running and Ready, completes Job pods and provisions volumes
// (stage files under stages/, copied from KWOK's stock ones). Deployments, StatefulSets and Jobs
// roll out through the real controllers; nothing runs in the pods.
//
// The bed keeps a real cluster's constraints: the default node is a DGX Spark labelled and
// tainted as a GPU node (nvidia.com/gpu=present:NoSchedule), with a kubelet's allocatable
// memory; the apiserver runs OwnerReferencesPermissionEnforcement and PodSecurity
// (StrictAPIServer), and CreateRestrictedNamespace labels namespaces with the restricted Pod
// Security level. What a user's cluster would refuse, the bed refuses.
//
// Pods of Jobs selected by Options.HoldJobPods are started but never completed by KWOK: a
// JobRunner executes their container's command on this machine and reports the outcome, so work
// such as creating Ollama model variants really happens.
package cluster

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Versions of the parts, as the hack/ scripts build them.
const (
	K8sVersion  = "1.37.2"
	KWOKVersion = "v0.8.0"
)

// KWOKAnnotation marks the nodes KWOK manages.
const KWOKAnnotation = "kwok.x-k8s.io/node"

// StorageClass is the default StorageClass; KWOK's volume stages provision its claims.
const StorageClass = "kwok-volume"

// GPUResource is the extended resource of NVIDIA's device plugin.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// Options configure a cluster. The zero value is one simulated DGX Spark and the cached assets.
type Options struct {
	// Assets is the folder with kube-apiserver, etcd, kube-controller-manager and kube-scheduler
	// (default: $KUBEBUILDER_ASSETS, else where `make k8s-assets` caches them).
	Assets string
	// KWOK is the kwok binary (default: $KWOK_BIN, else where `make kwok` caches it).
	KWOK string
	// Nodes are the simulated nodes (default: one DGXSpark named "dgx-spark-0").
	Nodes []Node
	// HoldJobPods selects Job pods KWOK starts (Running) but never completes: a pod is held when
	// its label K has one of the values HoldJobPods[K]. A JobRunner runs them.
	HoldJobPods map[string][]string
	// LogDir receives every component's log (default: a temporary folder Stop removes, unless
	// Start or a component failed).
	LogDir string
	// StartTimeout bounds Start (default 60 s).
	StartTimeout time.Duration
	// Scheme is the scheme of Client (default: client-go's).
	Scheme *runtime.Scheme
}

// GPU node labels and taint, as the NVIDIA GPU Operator (gpu-feature-discovery) labels a GPU
// node and as managed GPU node pools taint it: only pods that tolerate the taint land there.
const (
	GPUPresentLabel = "nvidia.com/gpu.present"
	GPUTaintKey     = "nvidia.com/gpu"
)

// GPUTaint keeps pods that do not tolerate it off a GPU node (nvidia.com/gpu=present:NoSchedule).
func GPUTaint() corev1.Taint {
	return corev1.Taint{Key: GPUTaintKey, Value: "present", Effect: corev1.TaintEffectNoSchedule}
}

// GPUToleration tolerates GPUTaint (operator Exists, as NVIDIA's examples and the DGX sample
// write it).
func GPUToleration() corev1.Toleration {
	return corev1.Toleration{Key: GPUTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
}

// Node is a simulated node: KWOK keeps it Ready and runs (pretends to run) its pods.
type Node struct {
	Name   string
	Labels map[string]string
	// Capacity is the node's total; Allocatable what the scheduler may give to pods (default:
	// Capacity). A real kubelet reserves memory for the system and for eviction.
	Capacity    corev1.ResourceList
	Allocatable corev1.ResourceList
	Taints      []corev1.Taint
	// InternalIP is the node's address (default: 10.240.0.N, N its position in Options.Nodes).
	InternalIP string
}

// DGXSpark is an NVIDIA DGX Spark (GB10) as a cluster sees it: arm64, 20 cores, 128 GiB
// unified memory of which about 119 GiB are allocatable (the kubelet's system reservation and
// eviction threshold), one GPU; labelled nvidia.com/gpu.present=true and tainted
// nvidia.com/gpu=present:NoSchedule, so only pods that tolerate the taint are scheduled on it.
func DGXSpark(name string) Node {
	return Node{
		Name: name,
		Labels: map[string]string{
			"kubernetes.io/arch":     "arm64",
			"kubernetes.io/os":       "linux",
			"kubernetes.io/hostname": name,
			GPUPresentLabel:          "true",
			"type":                   "kwok",
		},
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("20"),
			corev1.ResourceMemory: resource.MustParse("128Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
			GPUResource:           resource.MustParse("1"),
		},
		Allocatable: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("20"),
			corev1.ResourceMemory: resource.MustParse("119Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
			GPUResource:           resource.MustParse("1"),
		},
		Taints: []corev1.Taint{GPUTaint()},
	}
}

// Cluster is a running local cluster.
type Cluster struct {
	env        *envtest.Environment
	cfg        *rest.Config
	kubeconfig []byte
	logDir     string
	ownLogDir  bool
	procs      []*process
	client     client.Client
	failed     bool
}

// MissingAssetError says which asset is missing and which make target builds it.
type MissingAssetError struct {
	Path   string
	Target string
}

func (e *MissingAssetError) Error() string {
	return fmt.Sprintf("%s is missing: run `make %s` first", e.Path, e.Target)
}

// cacheDir is ${XDG_CACHE_HOME:-~/.cache}/rag-operator, as the Makefile's CACHE.
func cacheDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "rag-operator")
}

// DefaultAssets is $KUBEBUILDER_ASSETS, else the folder `make k8s-assets` fills.
func DefaultAssets() string {
	if v := os.Getenv("KUBEBUILDER_ASSETS"); v != "" {
		return v
	}
	return filepath.Join(cacheDir(), "k8s-v"+K8sVersion)
}

// DefaultKWOK is $KWOK_BIN, else the binary `make kwok` caches.
func DefaultKWOK() string {
	if v := os.Getenv("KWOK_BIN"); v != "" {
		return v
	}
	return filepath.Join(cacheDir(), "bin", "kwok-"+KWOKVersion)
}

// DefaultHelm is $HELM, else the binary `make helm` caches.
func DefaultHelm() string {
	if v := os.Getenv("HELM"); v != "" {
		return v
	}
	return filepath.Join(cacheDir(), "bin", "helm-v4.3.1")
}

func (o *Options) defaults() {
	if o.Assets == "" {
		o.Assets = DefaultAssets()
	}
	if o.KWOK == "" {
		o.KWOK = DefaultKWOK()
	}
	if len(o.Nodes) == 0 {
		o.Nodes = []Node{DGXSpark("dgx-spark-0")}
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
}

// CheckAssets reports the first missing binary as a *MissingAssetError naming its make target.
func CheckAssets(opts Options) error {
	opts.defaults()
	for _, name := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"} {
		if err := executable(filepath.Join(opts.Assets, name)); err != nil {
			return &MissingAssetError{Path: filepath.Join(opts.Assets, name), Target: "k8s-assets"}
		}
	}
	if err := executable(opts.KWOK); err != nil {
		return &MissingAssetError{Path: opts.KWOK, Target: "kwok"}
	}
	return nil
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// Start brings the cluster up: apiserver and etcd, then controller-manager, scheduler and KWOK,
// the default StorageClass and the nodes; it returns once every node is Ready and the
// controller-manager has created the default ServiceAccount. On error everything started is
// stopped again.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	opts.defaults()
	if err := CheckAssets(opts); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	c := &Cluster{logDir: opts.LogDir}
	if c.logDir == "" {
		if c.logDir, err = os.MkdirTemp("", "rag-cluster-"); err != nil {
			return nil, err
		}
		c.ownLogDir = true
	} else if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.failed = true
			_ = c.Stop()
			err = fmt.Errorf("%w (component logs in %s)", err, c.logDir)
		}
	}()

	scheme := opts.Scheme
	if scheme == nil {
		scheme = runtime.NewScheme()
		utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	}
	c.env = &envtest.Environment{BinaryAssetsDirectory: opts.Assets, Scheme: scheme}
	api := c.env.ControlPlane.GetAPIServer()
	// Explicit paths: envtest would otherwise prefer $KUBEBUILDER_ASSETS over opts.Assets.
	api.Path = filepath.Join(opts.Assets, "kube-apiserver")
	c.env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(opts.Assets, "etcd")}
	// The apiserver advertises 127.0.0.1, which may not be an endpoint of the kubernetes
	// Service; nothing in the cluster needs that Service.
	api.Configure().Set("endpoint-reconciler-type", "none")
	// Admission as strict as a hardened cluster's (StrictAPIServer). envtest already disables
	// the ServiceAccount admission plugin (no token volumes are injected: no pod runs anyway)
	// and configures service-account signing, so TokenRequest works and a process can act as
	// a ServiceAccount (ServiceAccountConfig).
	StrictAPIServer(c.env)
	if c.cfg, err = c.env.Start(); err != nil {
		c.env = nil
		return nil, fmt.Errorf("start kube-apiserver and etcd from %s: %w", opts.Assets, err)
	}
	admin, err := c.env.AddUser(envtest.User{Name: "cluster-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	if c.kubeconfig, err = admin.KubeConfig(); err != nil {
		return nil, err
	}
	c.cfg = rest.CopyConfig(admin.Config())
	c.cfg.QPS, c.cfg.Burst = 100, 200
	quiet := rest.CopyConfig(c.cfg)
	quiet.WarningHandlerWithContext = rest.NoWarnings{} // deprecation notices of lists over every kind
	if c.client, err = client.New(quiet, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	kubeconfigPath := filepath.Join(c.logDir, "admin.kubeconfig")
	if err := os.WriteFile(kubeconfigPath, c.kubeconfig, 0o600); err != nil {
		return nil, err
	}
	caPath := filepath.Join(c.logDir, "ca.crt")
	if err := os.WriteFile(caPath, c.cfg.CAData, 0o600); err != nil {
		return nil, err
	}

	stagesPath := filepath.Join(c.logDir, "kwok.yaml")
	stages, err := kwokConfig(opts.HoldJobPods)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(stagesPath, stages, 0o600); err != nil {
		return nil, err
	}
	for _, p := range []*process{
		{name: "kube-controller-manager", path: filepath.Join(opts.Assets, "kube-controller-manager"), args: []string{
			"--kubeconfig=" + kubeconfigPath,
			"--leader-elect=false",
			"--secure-port=0",
			"--root-ca-file=" + caPath,
			"--kube-api-qps=100", "--kube-api-burst=200",
			"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
			"--concurrent-statefulset-syncs=10", "--concurrent-job-syncs=10",
			"--concurrent-gc-syncs=10",
			"--v=1",
		}},
		{name: "kube-scheduler", path: filepath.Join(opts.Assets, "kube-scheduler"), args: []string{
			"--kubeconfig=" + kubeconfigPath,
			"--leader-elect=false",
			"--secure-port=0",
			"--kube-api-qps=100", "--kube-api-burst=200",
			"--v=1",
		}},
		{name: "kwok", path: opts.KWOK, args: []string{
			"--kubeconfig=" + kubeconfigPath,
			"--config=" + stagesPath,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + KWOKAnnotation + "=fake",
			"--node-lease-duration-seconds=40",
			"--cidr=10.244.0.0/16",
		}},
	} {
		if err := p.start(c.logDir); err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
	}

	if err := c.client.Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        StorageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       "kwok.x-k8s.io/volume",
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate),
	}); err != nil {
		return nil, fmt.Errorf("create StorageClass: %w", err)
	}
	for i, n := range opts.Nodes {
		if n.InternalIP == "" {
			n.InternalIP = fmt.Sprintf("10.240.0.%d", i+1)
		}
		if err := c.AddNode(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := c.waitReady(ctx, opts.Nodes); err != nil {
		return nil, err
	}
	return c, nil
}

// AddNode registers a simulated node; KWOK reports it Ready within a second.
func (c *Cluster) AddNode(ctx context.Context, n Node) error {
	allocatable := n.Allocatable
	if allocatable == nil {
		allocatable = n.Capacity
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        n.Name,
			Labels:      n.Labels,
			Annotations: map[string]string{KWOKAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Spec: corev1.NodeSpec{Taints: n.Taints},
		// Nodes are the one kind whose status may be set on create: KWOK keeps it.
		Status: corev1.NodeStatus{
			Capacity:    n.Capacity,
			Allocatable: allocatable,
			Addresses:   addresses(n),
			NodeInfo: corev1.NodeSystemInfo{
				Architecture:    n.Labels["kubernetes.io/arch"],
				OperatingSystem: "linux",
			},
		},
	}
	if err := c.client.Create(ctx, node); err != nil {
		return fmt.Errorf("create node %s: %w", n.Name, err)
	}
	return nil
}

// waitReady waits until the nodes are Ready without the not-ready taint and the
// controller-manager has created the default ServiceAccount.
func (c *Cluster) waitReady(ctx context.Context, nodes []Node) error {
	var last error
	check := func() error {
		for _, n := range nodes {
			node := &corev1.Node{}
			if err := c.client.Get(ctx, client.ObjectKey{Name: n.Name}, node); err != nil {
				return err
			}
			if !nodeReady(node) {
				return fmt.Errorf("node %s is not Ready yet", n.Name)
			}
			for _, t := range node.Spec.Taints {
				if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
					return fmt.Errorf("node %s still has the taint %s", n.Name, t.Key)
				}
			}
		}
		sa := &corev1.ServiceAccount{}
		if err := c.client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "default"}, sa); err != nil {
			return fmt.Errorf("kube-controller-manager has not created the default ServiceAccount yet: %w", err)
		}
		return nil
	}
	for {
		if last = check(); last == nil {
			return nil
		}
		if err := c.exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func addresses(n Node) []corev1.NodeAddress {
	out := []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: n.Name}}
	if n.InternalIP != "" {
		out = append([]corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.InternalIP}}, out...)
	}
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// exited reports a component that stopped by itself.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		if err := p.exitErr(); err != nil {
			return fmt.Errorf("%s exited: %v; its log (%s) ends with:\n%s", p.name, err, p.logPath, tail(p.logPath, 3<<10))
		}
	}
	return nil
}

// Healthy reports whether every component still runs (nil) or which one stopped.
func (c *Cluster) Healthy() error { return c.exited() }

// RESTConfig is a cluster-admin (system:masters) client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.cfg) }

// Kubeconfig is a cluster-admin kubeconfig.
func (c *Cluster) Kubeconfig() []byte { return bytes.Clone(c.kubeconfig) }

// KubeconfigPath is the file holding Kubeconfig (inside LogDir).
func (c *Cluster) KubeconfigPath() string { return filepath.Join(c.logDir, "admin.kubeconfig") }

// LogDir holds the components' logs, the kubeconfig and KWOK's configuration.
func (c *Cluster) LogDir() string { return c.logDir }

// Client is an uncached cluster-admin client with the client-go scheme.
func (c *Cluster) Client() client.Client { return c.client }

// Stop stops KWOK, the scheduler, the controller-manager, the apiserver and etcd. The log
// folder is removed when Start created it, unless something failed.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
	c.procs = nil
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			errs = append(errs, err)
		}
		c.env = nil
	}
	if c.ownLogDir && !c.failed {
		_ = os.RemoveAll(c.logDir)
	}
	return errors.Join(errs...)
}

// KeepLogs keeps the log folder after Stop (call it when a test or the demo failed).
func (c *Cluster) KeepLogs() { c.failed = true }

//go:embed stages/*.yaml
var stageFiles embed.FS

// kwokConfig is the --config file of KWOK: the stage files, with the hold expressions put in
// pod-complete.
func kwokConfig(hold map[string][]string) ([]byte, error) {
	entries, err := stageFiles.ReadDir("stages")
	if err != nil {
		return nil, err
	}
	var holdExpr strings.Builder
	keys := make([]string, 0, len(hold))
	for k := range hold {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key, _ := json.Marshal(".metadata.labels[" + string(mustJSON(k)) + "]")
		vals, _ := json.Marshal(hold[k])
		fmt.Fprintf(&holdExpr, "    - key: %s\n      operator: 'NotIn'\n      values: %s\n", key, vals)
	}
	var out bytes.Buffer
	for _, e := range entries {
		data, err := stageFiles.ReadFile("stages/" + e.Name())
		if err != nil {
			return nil, err
		}
		s := strings.Replace(string(data), "#HOLD\n", holdExpr.String(), 1)
		out.WriteString("---\n")
		out.WriteString(s)
		if !strings.HasSuffix(s, "\n") {
			out.WriteString("\n")
		}
	}
	return out.Bytes(), nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

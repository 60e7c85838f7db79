package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/testbed/cluster"
)

// The envtest suite: a real kube-apiserver and etcd (built by hack/build-k8s-bundle.sh) with
// the CRD installed and the manager running. There is no controller-manager, so Deployments
// never roll out by themselves: tests set their status where they need a ready component.
var (
	testEnv    *envtest.Environment
	cfg        *rest.Config
	k8s        client.Client // direct, uncached
	reconciler *RagApplianceReconciler
	testScheme = runtime.NewScheme()
	envErr     error
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(ragv1.AddToScheme(testScheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(testScheme))
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		home, _ := os.UserCacheDir()
		assets = filepath.Join(home, "rag-operator", "k8s-v1.37.2")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		envErr = fmt.Errorf("no kube-apiserver in %s: run `make k8s-assets` (or set KUBEBUILDER_ASSETS)", assets)
		return m.Run() // builder tests still run; envtest tests fail with envErr unless -short
	}
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	// The test bed's admission plugins (OwnerReferencesPermissionEnforcement, PodSecurity). The
	// manager here is in system:masters, which may set any owner reference; the chart's RBAC
	// meets the plugin in the e2e tests.
	cluster.StrictAPIServer(testEnv)
	var err error
	if cfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()
	stopGC, err := startGarbageCollector(testEnv, assets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "garbage collector:", err)
		return 1
	}
	defer stopGC()
	if k8s, err = client.New(cfg, client.Options{Scheme: testScheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  testScheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		// The manager's own cache scoping (label-selected informers), as in production.
		Cache: CacheOptions(nil),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reconciler = &RagApplianceReconciler{
		Client:    mgr.GetClient(),
		Scheme:    mgr.GetScheme(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("rag-operator"),
		External:  testExternal,
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	code := m.Run()
	cancel()
	<-done
	return code
}

func zapLevel() int {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		return -2
	}
	return int(zapcore.DPanicLevel) // quiet: failures speak through assertions
}

// needEnv skips in -short mode and fails loudly when the control plane is missing otherwise.
func needEnv(t *testing.T) {
	t.Helper()
	if testEnv == nil {
		if testing.Short() {
			t.Skip("envtest skipped in -short mode")
		}
		t.Fatal(envErr)
	}
}

// newNamespace gives a test its own namespace, deleted afterwards.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rag-test-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	return ns.Name
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

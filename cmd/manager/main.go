// Command manager runs the rag-operator controller manager. `manager model-sync` is the
// command the model-creation Jobs run (same image).
package main

import (
	"crypto/tls"
	"flag"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/controllers"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "model-sync" {
		os.Exit(modelSyncMain(os.Args[2:]))
	}
	os.Exit(managerMain())
}

func managerMain() int {
	var metricsAddr, probeAddr, watchNamespaces string
	var leaderElect, secureMetrics, enableHTTP2 bool
	var leaderElectionNamespace string
	var opts controllers.Options
	flag.StringVar(&opts.OllamaURL, "ollama-endpoint-override", "", "reach every appliance's Ollama at this URL instead of its Service (operator outside the cluster)")
	flag.StringVar(&opts.RagServerMetricsURL, "rag-server-metrics-override", "", "read every appliance's RAG server metrics (SLO figures, ingest backlog) from this URL instead of its pods")
	flag.StringVar(&opts.QdrantAddress, "qdrant-endpoint-override", "", "reach every appliance's Qdrant gRPC API at this host:port instead of its Service")
	flag.StringVar(&opts.ModelSyncImage, "model-sync-image", envOr("MODEL_SYNC_IMAGE", controllers.DefaultModelSyncImage), "image of the model-creation Jobs (the operator's own)")
	flag.DurationVar(&opts.ModelSyncRetryAfter, "model-sync-retry-after", controllers.DefaultModelSyncRetryAfter, "how long a failed model-creation Job is kept (for its logs) before the variant is tried again")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "address the metrics endpoint binds to (:8080 for plain HTTP with --metrics-secure=false); 0 disables it")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "serve metrics over HTTPS, only to callers the API server authenticates and authorises for GET /metrics (TokenReview, SubjectAccessReview); false serves plain HTTP to anyone")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "allow HTTP/2 on the metrics server (off: HTTP/2 Stream Cancellation and Rapid Reset, CVE-2023-44487, CVE-2023-39325)")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces whose RagAppliances (and children) this manager reconciles; empty: all namespaces")
	flag.StringVar(&opts.OperatorNamespace, "operator-namespace", os.Getenv("POD_NAMESPACE"), "the manager's namespace: appliance NetworkPolicies admit its pods (label control-plane=controller-manager) from there only; empty: from any namespace (default $POD_NAMESPACE)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address the health probes bind to")
	flag.BoolVar(&leaderElect, "leader-elect", false, "use leader election so only one manager reconciles")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	setupLog := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(ragv1.AddToScheme(scheme))

	// As kubebuilder v4 scaffolds: HTTP/2 off unless asked for; metrics over TLS (a self-signed
	// certificate generated at start) behind the API server's authentication and authorisation.
	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	namespaces := splitList(watchNamespaces)
	if len(namespaces) > 0 {
		setupLog.Info("Watching only these namespaces", "namespaces", namespaces)
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		Cache:                   controllers.CacheOptions(namespaces),
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "rag-operator.ragstack.dev",
		LeaderElectionNamespace: leaderElectionNamespace,
		// A manager that stops (upgrade, rollout) hands the lease over at once instead of making
		// the next one wait for it to expire; safe because Start returns only after every
		// reconcile has ended.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		setupLog.Error(err, "Failed to create manager")
		return 1
	}
	if err := controllers.Setup(mgr, opts); err != nil {
		setupLog.Error(err, "Failed to set up controller")
		return 1
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to add health check")
		return 1
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to add ready check")
		return 1
	}
	setupLog.Info("Starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "Manager stopped with an error")
		return 1
	}
	return 0
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ModelSyncSelector picks the pods of rag-operator's model-creation Jobs (`manager
// model-sync`); HoldModelSync holds them in KWOK for a JobRunner.
var (
	ModelSyncSelector = map[string]string{"app.kubernetes.io/name": "model-sync"}
	HoldModelSync     = map[string][]string{"app.kubernetes.io/name": {"model-sync"}}
)

// OperatorOptions configure InstallOperator.
type OperatorOptions struct {
	// Chart is the chart folder (default: charts/rag-operator in the module).
	Chart string
	// Release and Namespace of the Helm release (default rag-operator in rag-operator-system).
	Release, Namespace string
	// Set are extra `--set` values.
	Set []string
	// ManagerBinary is the manager built from ./cmd/manager (BuildManager): it stands for the
	// chart's image, both for the manager pod and for the model-sync Job pods.
	ManagerBinary string
	// OllamaURL and QdrantAddress are the local servers standing in for every appliance's
	// Ollama and Qdrant. They reach the manager through the chart's extraArgs as the
	// documented --ollama-endpoint-override and --qdrant-endpoint-override flags; the
	// JobRunner points model-sync's --ollama (a Service URL) at OllamaURL, as cluster DNS
	// would resolve it to the Service's pod.
	OllamaURL, QdrantAddress string
	// Tolerations are the manager pod's (the chart's `tolerations` value). On a cluster whose
	// only nodes are tainted GPU nodes (one DGX Spark), the manager needs GPUToleration.
	Tolerations []corev1.Toleration
	// Helm is the helm to use (default: the cluster's NewHelm with DefaultHelm).
	Helm *Helm
	// Timeout bounds each helm command's wait (default 60 s).
	Timeout time.Duration
}

// Operator is rag-operator installed by its Helm chart. KWOK simulates the manager
// Deployment's pod; Manager runs that pod's command line on this machine as the chart's
// ServiceAccount (least-privilege RBAC exercised), and Jobs runs the model-sync Job pods.
type Operator struct {
	Manager *Mirror
	Jobs    *JobRunner
	Helm    *Helm
	// Deployment is the manager Deployment's name.
	Deployment string

	c    *Cluster
	opts OperatorOptions
}

// ModuleRoot is the folder of the go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildManager builds ./cmd/manager of the module into dir and returns the binary's path.
// `go build` relinks only when a source changed, so a warm call takes about a second; a cold
// one compiles the module (minutes on a loaded 2-core machine). Call it before any deadline
// starts (in TestMain, before the demo's clocks), with a context that has none.
//
// It builds with the go command's default settings (no -trimpath, cgo as configured), the same
// as `go test ./...` and `go build ./...`, so the packages those already compiled come from the
// build cache: the binary runs on this machine, not in the image.
func BuildManager(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "manager")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/manager")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/manager: %v\n%s", err, b)
	}
	return out, nil
}

func (o *OperatorOptions) defaults() error {
	if o.Chart == "" {
		root, err := ModuleRoot()
		if err != nil {
			return err
		}
		o.Chart = filepath.Join(root, "charts", "rag-operator")
	}
	if o.Release == "" {
		o.Release = "rag-operator"
	}
	if o.Namespace == "" {
		o.Namespace = "rag-operator-system"
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.ManagerBinary == "" {
		return fmt.Errorf("OperatorOptions.ManagerBinary is required (BuildManager)")
	}
	return nil
}

// valueArgs are the helm value flags of every install and upgrade.
func (o *OperatorOptions) valueArgs(extra []string) []string {
	var args []string
	var extraArgs []string
	if o.OllamaURL != "" {
		extraArgs = append(extraArgs, "--ollama-endpoint-override="+o.OllamaURL)
	}
	if o.QdrantAddress != "" {
		extraArgs = append(extraArgs, "--qdrant-endpoint-override="+o.QdrantAddress)
	}
	if len(extraArgs) > 0 {
		j, _ := json.Marshal(extraArgs)
		args = append(args, "--set-json", "extraArgs="+string(j))
	}
	if len(o.Tolerations) > 0 {
		j, _ := json.Marshal(o.Tolerations)
		args = append(args, "--set-json", "tolerations="+string(j))
	}
	for _, s := range append(append([]string(nil), o.Set...), extra...) {
		args = append(args, "--set", s)
	}
	return args
}

// InstallOperator creates the release namespace with the restricted Pod Security level
// (CreateRestrictedNamespace; `helm install --create-namespace` would leave it unlabelled), runs
// `helm install --wait` of the chart (CRD, RBAC, ServiceAccount, manager Deployment), then
// starts the manager mirror (waiting for its /readyz) and the job runner.
func (c *Cluster) InstallOperator(ctx context.Context, opts OperatorOptions) (*Operator, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if opts.Helm == nil {
		h, err := c.NewHelm("")
		if err != nil {
			return nil, err
		}
		opts.Helm = h
	}
	if err := c.CreateRestrictedNamespace(ctx, opts.Namespace); err != nil {
		return nil, err
	}
	o := &Operator{c: c, opts: opts, Helm: opts.Helm}
	args := []string{"install", opts.Release, opts.Chart, "--namespace", opts.Namespace,
		"--wait", "--timeout", opts.Timeout.String()}
	if _, err := o.Helm.Run(ctx, append(args, opts.valueArgs(nil)...)...); err != nil {
		return nil, err
	}
	if err := o.start(ctx); err != nil {
		return nil, err
	}
	return o, nil
}

// start finds the manager Deployment and starts the mirror and the job runner.
func (o *Operator) start(ctx context.Context) error {
	list := &appsv1.DeploymentList{}
	if err := o.c.client.List(ctx, list, client.InNamespace(o.opts.Namespace),
		client.MatchingLabels{"app.kubernetes.io/instance": o.opts.Release, "control-plane": "controller-manager"}); err != nil {
		return err
	}
	if len(list.Items) != 1 {
		return fmt.Errorf("release %s: want one manager Deployment, found %d", o.opts.Release, len(list.Items))
	}
	d := list.Items[0]
	o.Deployment = d.Name
	image := d.Spec.Template.Spec.Containers[0].Image
	m, err := o.c.MirrorDeployment(ctx, MirrorOptions{
		Namespace:  o.opts.Namespace,
		Deployment: d.Name,
		Container:  "manager",
		Binary:     o.opts.ManagerBinary,
		Rewrite:    managerArgsOutsidePod(o.opts.Namespace),
		ReadyURL: func(args []string) string {
			return "http://" + flagValue(args, "--health-probe-bind-address") + "/readyz"
		},
	})
	if err != nil {
		if m != nil {
			m.Stop()
		}
		return err
	}
	o.Manager = m
	o.Jobs = o.c.StartJobRunner(context.WithoutCancel(ctx), JobRunnerOptions{
		Selector: ModelSyncSelector,
		Binaries: map[string]string{image: o.opts.ManagerBinary},
		Rewrite:  replaceFlag("--ollama", o.opts.OllamaURL),
	})
	return nil
}

// Upgrade runs `helm upgrade --wait` with the install's values plus set, then restarts the
// manager mirror from the new pod template (as the rollout replaced the pod).
func (o *Operator) Upgrade(ctx context.Context, set ...string) error {
	o.opts.Set = append(o.opts.Set, set...)
	args := []string{"upgrade", o.opts.Release, o.opts.Chart, "--namespace", o.opts.Namespace,
		"--wait", "--timeout", o.opts.Timeout.String()}
	if _, err := o.Helm.Run(ctx, append(args, o.opts.valueArgs(nil)...)...); err != nil {
		return err
	}
	o.stop()
	return o.start(ctx)
}

// Uninstall stops the mirror and the job runner and runs `helm uninstall --wait`.
func (o *Operator) Uninstall(ctx context.Context) (string, error) {
	o.stop()
	return o.Helm.Run(ctx, "uninstall", o.opts.Release, "--namespace", o.opts.Namespace, "--wait", "--timeout", o.opts.Timeout.String())
}

// Stop stops the mirror and the job runner; the release stays installed.
func (o *Operator) Stop() { o.stop() }

func (o *Operator) stop() {
	if o.Manager != nil {
		o.Manager.Stop()
	}
	if o.Jobs != nil {
		o.Jobs.Stop()
	}
}

// Namespace and Release of the Helm release.
func (o *Operator) Namespace() string { return o.opts.Namespace }
func (o *Operator) Release() string   { return o.opts.Release }

// managerArgsOutsidePod adapts the manager's command line to a process on this machine: the
// metrics and probe servers bind to free loopback ports (the pod's :8080 and :8081 could be
// taken here), and with --leader-elect the Lease namespace is given explicitly (in a pod,
// controller-runtime reads it from the ServiceAccount mount).
func managerArgsOutsidePod(namespace string) func([]string) []string {
	return func(args []string) []string {
		out := make([]string, 0, len(args)+1)
		leader, hasNS := false, false
		for _, a := range args {
			name, val, _ := strings.Cut(a, "=")
			switch name {
			case "--metrics-bind-address", "--health-probe-bind-address":
				if val != "0" {
					if addr, err := FreeLoopbackAddr(); err == nil {
						a = name + "=" + addr
					}
				}
			case "--leader-elect":
				leader = val == "" || val == "true"
			case "--leader-election-namespace":
				hasNS = true
			}
			out = append(out, a)
		}
		if leader && !hasNS {
			out = append(out, "--leader-election-namespace="+namespace)
		}
		return out
	}
}

// replaceFlag sets --name=value in an argument list (when value is not empty).
func replaceFlag(name, value string) func([]string) []string {
	return func(args []string) []string {
		if value == "" {
			return args
		}
		out := append([]string(nil), args...)
		for i, a := range out {
			if a == name || strings.HasPrefix(a, name+"=") {
				out[i] = name + "=" + value
			}
		}
		return out
	}
}

// flagValue is the value of --name=value in args ("" when absent).
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

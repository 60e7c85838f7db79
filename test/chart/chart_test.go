/*
Copyright 2026 The rag-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package chart_test checks the Helm chart charts/rag-operator with a real helm binary (built
// from the module proxy by hack/build-helm.sh): lint, render, what each value changes, the
// schema, drift against the generated CRD and RBAC, and agreement with config/default.
package chart_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	helmVersion = "v4.3.1"
	release     = "rag-operator"
	namespace   = "rag-operator-system"
	// fullname is the chart's object-name prefix for the release above.
	fullname     = "rag-operator"
	deployName   = fullname + "-controller-manager"
	chartRelPath = "charts/rag-operator"
)

var (
	repoRoot string
	chartDir string
	helmHome string // HELM_{CACHE,CONFIG,DATA}_HOME: keep helm off the user's own settings
)

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	chartDir = filepath.Join(repoRoot, chartRelPath)
	helmHome, err = os.MkdirTemp("", "rag-operator-chart-test-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = os.RemoveAll(helmHome)
	os.Exit(code)
}

// helmBinary returns the helm to test with: $HELM, else the one hack/build-helm.sh caches. A
// missing helm skips the test, unless RAG_REQUIRE_HELM=1 (CI), where it fails.
func helmBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("No home directory to find the helm cache in: %v", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		path = filepath.Join(cache, "rag-operator", "bin", "helm-"+helmVersion)
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("helm %s not found at %s: build it with hack/build-helm.sh (or set HELM)", helmVersion, path)
		if os.Getenv("RAG_REQUIRE_HELM") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBinary(t), args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// writeValues writes a values file for one render; "" means the chart's defaults.
func writeValues(t *testing.T, values string) []string {
	t.Helper()
	if values == "" {
		return nil
	}
	// Not t.TempDir(): its path holds the test name, and helm splits --values on commas.
	f, err := os.CreateTemp(helmHome, "values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(values); err != nil {
		t.Fatal(err)
	}
	return []string{"--values", f.Name()}
}

// renderChart runs helm template for the test release with the given values file content.
func renderChart(t *testing.T, values string) (*manifest, error) {
	t.Helper()
	args := append([]string{"template", release, chartRelPath, "--namespace", namespace}, writeValues(t, values)...)
	out, err := runHelm(t, args...)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("parsing helm template output: %w\n%s", err, out)
	}
	return m, nil
}

func mustRender(t *testing.T, values string) *manifest {
	t.Helper()
	m, err := renderChart(t, values)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// manifest is a rendered multi-document YAML stream.
type manifest struct {
	objs []object
}

type object struct {
	u    *unstructured.Unstructured
	json []byte
}

func (o object) key() string {
	return fmt.Sprintf("%s %s/%s", o.u.GetKind(), o.u.GetNamespace(), o.u.GetName())
}

func parseManifest(data []byte) (*manifest, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	m := &manifest{}
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		m.objs = append(m.objs, object{u: u, json: js})
	}
}

func (m *manifest) ofKind(kind string) []object {
	var out []object
	for _, o := range m.objs {
		if o.u.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m *manifest) find(kind, name string) (object, bool) {
	for _, o := range m.ofKind(kind) {
		if o.u.GetName() == name {
			return o, true
		}
	}
	return object{}, false
}

func (m *manifest) keys() []string {
	var out []string
	for _, o := range m.objs {
		out = append(out, o.key())
	}
	sort.Strings(out)
	return out
}

func (m *manifest) kinds() []string {
	set := map[string]bool{}
	for _, o := range m.objs {
		set[o.u.GetKind()] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// decodeInto decodes an object strictly into a typed struct: an unknown field fails the test.
func decodeInto(t *testing.T, o object, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(o.json, into); err != nil {
		t.Fatalf("%s does not decode strictly: %v", o.key(), err)
	}
}

func (m *manifest) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	ds := m.ofKind("Deployment")
	if len(ds) != 1 {
		t.Fatalf("want 1 Deployment, got %d: %v", len(ds), m.keys())
	}
	d := &appsv1.Deployment{}
	decodeInto(t, ds[0], d)
	return d
}

func (m *manifest) typed(t *testing.T, kind, name string, into any) {
	t.Helper()
	o, ok := m.find(kind, name)
	if !ok {
		t.Fatalf("no %s %q in %v", kind, name, m.keys())
	}
	decodeInto(t, o, into)
}

func managerContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no manager container", d.Name)
	return corev1.Container{}
}

func hasArg(c corev1.Container, arg string) bool { return slices.Contains(c.Args, arg) }

func port(c corev1.Container, name string) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

// assertRestricted checks the restricted Pod Security Standard settings on every pod template
// of the manifest, for every container and init container.
func assertRestricted(t *testing.T, m *manifest) {
	t.Helper()
	for _, o := range m.ofKind("Deployment") {
		d := &appsv1.Deployment{}
		decodeInto(t, o, d)
		pod := d.Spec.Template.Spec
		psc := pod.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod securityContext.runAsNonRoot is not true", o.key())
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod seccompProfile is not RuntimeDefault", o.key())
		}
		if pod.HostNetwork || pod.HostPID || pod.HostIPC {
			t.Errorf("%s: uses host namespaces", o.key())
		}
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s container %s: no securityContext", o.key(), c.Name)
				continue
			case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
				t.Errorf("%s container %s: runAsNonRoot is not true", o.key(), c.Name)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s container %s: readOnlyRootFilesystem is not true", o.key(), c.Name)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s container %s: allowPrivilegeEscalation is not false", o.key(), c.Name)
			case sc.Privileged != nil && *sc.Privileged:
				t.Errorf("%s container %s: privileged", o.key(), c.Name)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("%s container %s: capabilities are not exactly drop [ALL]", o.key(), c.Name)
			case sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
				t.Errorf("%s container %s: seccompProfile is not RuntimeDefault", o.key(), c.Name)
			}
		}
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	for name, values := range map[string]string{
		"defaults": "",
		"everything on": `
replicas: 2
metrics:
  serviceMonitor:
    enabled: true
    labels: {release: prometheus}
serviceAccount:
  annotations: {example.com/role: rag-operator}
nodeSelector: {kubernetes.io/arch: arm64}
tolerations: [{key: dedicated, operator: Equal, value: ops, effect: NoSchedule}]
extraArgs: ["--zap-stacktrace-level=panic"]
extraEnv: [{name: GOMEMLIMIT, value: 200MiB}]
watchNamespaces: [team-a, team-b]
monitoring:
  dashboards: {enabled: true, labels: {team: ml}}
  prometheusRule: {enabled: true, labels: {release: prometheus}, chatTTFTSeconds: 1.5}
`,
		"everything off": `
crds: {install: false}
rbac: {create: false}
serviceAccount: {create: false, name: existing}
leaderElection: {enabled: false}
metrics: {enabled: false}
`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", chartRelPath}, writeValues(t, values)...)
			if out, err := runHelm(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func TestHelmVersion(t *testing.T) {
	t.Parallel()
	out, err := runHelm(t, "version", "--template", "{{ .Version }}")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != helmVersion {
		t.Errorf("helm reports version %q, want %s (hack/build-helm.sh sets it with -ldflags)", out, helmVersion)
	}
	// The Kubernetes version helm assumes without a cluster (.Capabilities.KubeVersion) must
	// satisfy Chart.yaml's kubeVersion (>=1.30): a helm built without module info would fall
	// back to 1.20 and refuse to render.
	if _, err := renderChart(t, ""); err != nil {
		t.Errorf("render against helm's default Kubernetes version: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	m := mustRender(t, "")

	want := []string{
		"ClusterRole /" + fullname + "-manager",
		"ClusterRole /" + fullname + "-metrics-auth-role",
		"ClusterRole /" + fullname + "-metrics-reader",
		"ClusterRoleBinding /" + fullname + "-manager",
		"ClusterRoleBinding /" + fullname + "-metrics-auth-rolebinding",
		"CustomResourceDefinition /ragappliances.rag.ragstack.dev",
		"Deployment " + namespace + "/" + deployName,
		"NetworkPolicy " + namespace + "/" + deployName,
		"Role " + namespace + "/" + fullname + "-leader-election",
		"RoleBinding " + namespace + "/" + fullname + "-leader-election",
		"Service " + namespace + "/" + fullname + "-metrics",
		"ServiceAccount " + namespace + "/" + deployName,
	}
	sort.Strings(want)
	if got := m.keys(); !slices.Equal(got, want) {
		t.Fatalf("default objects:\n got %v\nwant %v", got, want)
	}
	for _, o := range m.objs {
		if o.u.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s: missing the app.kubernetes.io/managed-by=Helm label", o.key())
		}
	}

	d := m.deployment(t)
	c := managerContainer(t, d)
	if c.Image != "ghcr.io/ragstack/rag-operator:v0.1.0" {
		t.Errorf("image = %q, want ghcr.io/ragstack/rag-operator:v0.1.0 (v + appVersion)", c.Image)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("pullPolicy = %q", c.ImagePullPolicy)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1", d.Spec.Replicas)
	}
	wantArgs := []string{"--leader-elect", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081",
		"--model-sync-image=ghcr.io/ragstack/rag-operator:v0.1.0", "--zap-log-level=info", "--zap-encoder=json"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args = %q, want %q", c.Args, wantArgs)
	}
	if !slices.Equal(c.Command, []string{"/manager"}) {
		t.Errorf("command = %q, want [/manager] (build/manager.Dockerfile)", c.Command)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe is not GET /healthz: %+v", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe is not GET /readyz: %+v", c.ReadinessProbe)
	}
	if p, ok := port(c, "health"); !ok || p.ContainerPort != 8081 {
		t.Errorf("health port = %+v", p)
	}
	if p, ok := port(c, "https"); !ok || p.ContainerPort != 8443 {
		t.Errorf("metrics port = %+v", p)
	}
	if d.Spec.Template.Spec.ServiceAccountName != deployName {
		t.Errorf("serviceAccountName = %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	// The Deployment selects its own pods, and the Service selects the same pods.
	sel := d.Spec.Selector.MatchLabels
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("pod template lacks selector label %s=%s", k, v)
		}
	}
	svc := &corev1.Service{}
	m.typed(t, "Service", fullname+"-metrics", svc)
	if !equality.Semantic.DeepEqual(svc.Spec.Selector, sel) {
		t.Errorf("metrics Service selects %v, Deployment %v", svc.Spec.Selector, sel)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Ports[0].Name != "https" || svc.Spec.Ports[0].TargetPort.StrVal != "https" {
		t.Errorf("metrics Service ports = %+v", svc.Spec.Ports)
	}
	assertSecureMetricsRBAC(t, m, true)
	// Leader election: the Lease and Events in the release namespace, bound to the manager's SA.
	role := &rbacv1.Role{}
	m.typed(t, "Role", fullname+"-leader-election", role)
	var leases, events bool
	for _, r := range role.Rules {
		leases = leases || (slices.Contains(r.APIGroups, "coordination.k8s.io") && slices.Contains(r.Resources, "leases"))
		events = events || (slices.Contains(r.Resources, "events") && slices.Contains(r.Verbs, "create"))
	}
	if !leases || !events || role.Namespace != namespace {
		t.Errorf("leader-election Role must allow leases and events in %s: %+v", namespace, role)
	}
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		for _, o := range m.ofKind(kind) {
			rb := &rbacv1.RoleBinding{}
			decodeInto(t, o, rb)
			if len(rb.Subjects) != 1 || rb.Subjects[0].Name != deployName || rb.Subjects[0].Namespace != namespace {
				t.Errorf("%s subjects = %+v", o.key(), rb.Subjects)
			}
		}
	}
	// The CRD is kept on uninstall.
	crd, _ := m.find("CustomResourceDefinition", "ragappliances.rag.ragstack.dev")
	if crd.u.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("CRD lacks helm.sh/resource-policy: keep: %v", crd.u.GetAnnotations())
	}
	assertRestricted(t, m)
}

// TestClusterRoleMatchesGenerated: the chart grants the manager exactly what controller-gen
// generated from the +kubebuilder:rbac markers into config/rbac/role.yaml.
func TestClusterRoleMatchesGenerated(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	generated := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(data, generated); err != nil {
		t.Fatal(err)
	}
	if len(generated.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	m := mustRender(t, "")
	rendered := &rbacv1.ClusterRole{}
	m.typed(t, "ClusterRole", fullname+"-manager", rendered)
	if !equality.Semantic.DeepEqual(rendered.Rules, generated.Rules) {
		t.Errorf("chart ClusterRole rules differ from config/rbac/role.yaml (run hack/sync-chart.sh):\nchart: %+v\n  gen: %+v", rendered.Rules, generated.Rules)
	}
	crb := &rbacv1.ClusterRoleBinding{}
	m.typed(t, "ClusterRoleBinding", fullname+"-manager", crb)
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != rendered.Name {
		t.Errorf("ClusterRoleBinding roleRef = %+v, want ClusterRole %s", crb.RoleRef, rendered.Name)
	}
}

// TestGeneratedCopiesInSync is the drift check: the chart's copies of the generated CRDs and
// ClusterRole equal config/ byte for byte, and the rendered CRD is the generated one plus the
// chart's labels and keep annotation.
func TestGeneratedCopiesInSync(t *testing.T) {
	t.Parallel()
	const fix = "run hack/sync-chart.sh (make manifests)"
	src, err := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(src) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	dst, _ := filepath.Glob(filepath.Join(chartDir, "files", "crds", "*.yaml"))
	base := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(base(src), base(dst)) {
		t.Fatalf("chart CRD files %v differ from config/crd/bases %v: %s", base(dst), base(src), fix)
	}
	pairs := map[string]string{
		filepath.Join(repoRoot, "config", "rbac", "role.yaml"): filepath.Join(chartDir, "files", "rbac", "manager-role.yaml"),
	}
	for i := range src {
		pairs[src[i]] = dst[i]
	}
	for s, d := range pairs {
		a, err1 := os.ReadFile(s)
		b, err2 := os.ReadFile(d)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: %s", d, s, fix)
		}
	}
	if _, err := os.Stat(filepath.Join(chartDir, "crds")); err == nil {
		t.Errorf("%s/crds exists: the chart renders its CRDs from files/crds (templates/crds.yaml); a crds/ folder would create them twice: %s", chartRelPath, fix)
	}

	m := mustRender(t, "")
	chartLabels := m.deployment(t).Labels
	for _, s := range src {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		want, err := parseManifest(data)
		if err != nil || len(want.objs) != 1 {
			t.Fatalf("%s: %v (%d objects)", s, err, len(want.objs))
		}
		w := want.objs[0].u
		got, ok := m.find("CustomResourceDefinition", w.GetName())
		if !ok {
			t.Fatalf("CRD %s not rendered", w.GetName())
		}
		g := got.u.DeepCopy()
		ann := g.GetAnnotations()
		delete(ann, "helm.sh/resource-policy")
		g.SetAnnotations(ann)
		labels := g.GetLabels()
		for k := range chartLabels {
			delete(labels, k)
		}
		if len(labels) == 0 {
			labels = nil
		}
		g.SetLabels(labels)
		if !equality.Semantic.DeepEqual(g.Object, w.Object) {
			gj, _ := json.MarshalIndent(g.Object["metadata"], "", " ")
			wj, _ := json.MarshalIndent(w.Object["metadata"], "", " ")
			t.Errorf("rendered CRD %s differs from %s beyond the chart's labels and keep annotation\nrendered metadata %s\ngenerated metadata %s", w.GetName(), s, gj, wj)
		}
	}
}

// valueCase is one row of "what each value changes": render with values set, assert the effect.
type valueCase struct {
	name   string
	covers []string // the documented values (dotted paths in values.yaml) this row exercises
	values string
	check  func(t *testing.T, m *manifest)
}

func valueCases() []valueCase {
	return append(monitoringValueCases(), []valueCase{
		{
			name: "nameOverride renames objects and the name label", covers: []string{"nameOverride"},
			values: "nameOverride: ragop\n",
			check: func(t *testing.T, m *manifest) {
				d := m.deployment(t)
				if d.Name != "rag-operator-ragop-controller-manager" || d.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "ragop" {
					t.Errorf("name %s, selector %v", d.Name, d.Spec.Selector.MatchLabels)
				}
			},
		},
		{
			name: "fullnameOverride sets every name prefix", covers: []string{"fullnameOverride"},
			values: "fullnameOverride: acme\n",
			check: func(t *testing.T, m *manifest) {
				for _, k := range []string{"Deployment acme-controller-manager", "ServiceAccount acme-controller-manager", "ClusterRole acme-manager",
					"ClusterRoleBinding acme-manager", "Role acme-leader-election", "RoleBinding acme-leader-election", "Service acme-metrics"} {
					kind, name, _ := strings.Cut(k, " ")
					if _, ok := m.find(kind, name); !ok {
						t.Errorf("no %s in %v", k, m.keys())
					}
				}
			},
		},
		{
			name: "image.repository", covers: []string{"image.repository"},
			values: "image: {repository: registry.example.com/rag/operator}\n",
			check: func(t *testing.T, m *manifest) {
				if c := managerContainer(t, m.deployment(t)); c.Image != "registry.example.com/rag/operator:v0.1.0" {
					t.Errorf("image = %s", c.Image)
				}
			},
		},
		{
			name: "image.tag", covers: []string{"image.tag"},
			values: "image: {tag: v9.8.7}\n",
			check: func(t *testing.T, m *manifest) {
				c := managerContainer(t, m.deployment(t))
				if c.Image != "ghcr.io/ragstack/rag-operator:v9.8.7" {
					t.Errorf("image = %s", c.Image)
				}
				// The model-creation Jobs run the same image as the manager.
				if !slices.Contains(c.Args, "--model-sync-image=ghcr.io/ragstack/rag-operator:v9.8.7") {
					t.Errorf("args %q do not pass the image to the model-sync Jobs", c.Args)
				}
			},
		},
		{
			name: "image.pullPolicy", covers: []string{"image.pullPolicy"},
			values: "image: {pullPolicy: Always}\n",
			check: func(t *testing.T, m *manifest) {
				if c := managerContainer(t, m.deployment(t)); c.ImagePullPolicy != corev1.PullAlways {
					t.Errorf("pullPolicy = %s", c.ImagePullPolicy)
				}
			},
		},
		{
			name: "imagePullSecrets", covers: []string{"imagePullSecrets"},
			values: "imagePullSecrets: [{name: regcred}]\n",
			check: func(t *testing.T, m *manifest) {
				want := []corev1.LocalObjectReference{{Name: "regcred"}}
				if got := m.deployment(t).Spec.Template.Spec.ImagePullSecrets; !equality.Semantic.DeepEqual(got, want) {
					t.Errorf("imagePullSecrets = %v", got)
				}
			},
		},
		{
			name: "replicas > 1 keeps leader election", covers: []string{"replicas"},
			values: "replicas: 3\n",
			check: func(t *testing.T, m *manifest) {
				d := m.deployment(t)
				if *d.Spec.Replicas != 3 || !hasArg(managerContainer(t, d), "--leader-elect") {
					t.Errorf("replicas %d, args %q", *d.Spec.Replicas, managerContainer(t, d).Args)
				}
				if _, ok := m.find("Role", fullname+"-leader-election"); !ok {
					t.Error("no leader-election Role")
				}
			},
		},
		{
			name: "leaderElection.enabled=false drops the flag and its RBAC", covers: []string{"leaderElection.enabled"},
			values: "leaderElection: {enabled: false}\n",
			check: func(t *testing.T, m *manifest) {
				if c := managerContainer(t, m.deployment(t)); hasArg(c, "--leader-elect") {
					t.Errorf("args %q still elect a leader", c.Args)
				}
				if len(m.ofKind("Role"))+len(m.ofKind("RoleBinding")) != 0 {
					t.Errorf("leader-election RBAC still rendered: %v", m.keys())
				}
			},
		},
		{
			name: "crds.install=false drops the CRD", covers: []string{"crds.install"},
			values: "crds: {install: false}\n",
			check: func(t *testing.T, m *manifest) {
				if n := len(m.ofKind("CustomResourceDefinition")); n != 0 {
					t.Errorf("%d CRDs rendered", n)
				}
			},
		},
		{
			name: "crds.keep=false drops the keep annotation", covers: []string{"crds.keep"},
			values: "crds: {keep: false}\n",
			check: func(t *testing.T, m *manifest) {
				crds := m.ofKind("CustomResourceDefinition")
				if len(crds) != 1 {
					t.Fatalf("%d CRDs", len(crds))
				}
				if _, ok := crds[0].u.GetAnnotations()["helm.sh/resource-policy"]; ok {
					t.Errorf("annotations %v", crds[0].u.GetAnnotations())
				}
			},
		},
		{
			name: "serviceAccount.create=false uses an existing one", covers: []string{"serviceAccount.create"},
			values: "serviceAccount: {create: false, name: existing}\n",
			check: func(t *testing.T, m *manifest) {
				if n := len(m.ofKind("ServiceAccount")); n != 0 {
					t.Errorf("%d ServiceAccounts rendered", n)
				}
				if sa := m.deployment(t).Spec.Template.Spec.ServiceAccountName; sa != "existing" {
					t.Errorf("serviceAccountName = %s", sa)
				}
			},
		},
		{
			name: "serviceAccount.name names the account and every binding subject", covers: []string{"serviceAccount.name"},
			values: "serviceAccount: {name: rag-sa}\n",
			check: func(t *testing.T, m *manifest) {
				if _, ok := m.find("ServiceAccount", "rag-sa"); !ok {
					t.Errorf("no ServiceAccount rag-sa: %v", m.keys())
				}
				if sa := m.deployment(t).Spec.Template.Spec.ServiceAccountName; sa != "rag-sa" {
					t.Errorf("serviceAccountName = %s", sa)
				}
				for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
					for _, o := range m.ofKind(kind) {
						rb := &rbacv1.RoleBinding{}
						decodeInto(t, o, rb)
						if rb.Subjects[0].Name != "rag-sa" {
							t.Errorf("%s binds %s", o.key(), rb.Subjects[0].Name)
						}
					}
				}
			},
		},
		{
			name: "serviceAccount.annotations", covers: []string{"serviceAccount.annotations"},
			values: "serviceAccount: {annotations: {iam.example.com/role: rag}}\n",
			check: func(t *testing.T, m *manifest) {
				sa := &corev1.ServiceAccount{}
				m.typed(t, "ServiceAccount", deployName, sa)
				if sa.Annotations["iam.example.com/role"] != "rag" {
					t.Errorf("annotations = %v", sa.Annotations)
				}
			},
		},
		{
			name: "rbac.create=false drops every role and binding", covers: []string{"rbac.create"},
			values: "rbac: {create: false}\n",
			check: func(t *testing.T, m *manifest) {
				for _, kind := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
					if n := len(m.ofKind(kind)); n != 0 {
						t.Errorf("%d %s rendered", n, kind)
					}
				}
			},
		},
		{
			name: "logging.level", covers: []string{"logging.level"},
			values: "logging: {level: debug}\n",
			check: func(t *testing.T, m *manifest) {
				if c := managerContainer(t, m.deployment(t)); !hasArg(c, "--zap-log-level=debug") || hasArg(c, "--zap-log-level=info") {
					t.Errorf("args %q", c.Args)
				}
			},
		},
		{
			name: "logging.encoder", covers: []string{"logging.encoder"},
			values: "logging: {encoder: console}\n",
			check: func(t *testing.T, m *manifest) {
				if c := managerContainer(t, m.deployment(t)); !hasArg(c, "--zap-encoder=console") {
					t.Errorf("args %q", c.Args)
				}
			},
		},
		{
			name: "extraArgs are appended last", covers: []string{"extraArgs"},
			values: "extraArgs: [\"--zap-stacktrace-level=panic\", \"--zap-time-encoding=rfc3339\"]\n",
			check: func(t *testing.T, m *manifest) {
				args := managerContainer(t, m.deployment(t)).Args
				if !slices.Equal(args[len(args)-2:], []string{"--zap-stacktrace-level=panic", "--zap-time-encoding=rfc3339"}) {
					t.Errorf("args %q", args)
				}
			},
		},
		{
			name: "networkPolicy off", covers: []string{"networkPolicy.enabled"},
			values: "networkPolicy: {enabled: false}\n",
			check: func(t *testing.T, m *manifest) {
				if n := len(m.ofKind("NetworkPolicy")); n != 0 {
					t.Errorf("%d NetworkPolicies with networkPolicy.enabled=false", n)
				}
			},
		},
		{
			name: "extraEnv", covers: []string{"extraEnv"},
			values: "extraEnv: [{name: GOMEMLIMIT, value: 200MiB}, {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n",
			check: func(t *testing.T, m *manifest) {
				env := managerContainer(t, m.deployment(t)).Env
				// POD_NAMESPACE (the chart's own) first, then the extra env in order.
				if len(env) != 3 || env[0].Name != "POD_NAMESPACE" || env[1].Name != "GOMEMLIMIT" || env[1].Value != "200MiB" || env[2].ValueFrom == nil {
					t.Errorf("env = %+v", env)
				}
			},
		},
		{
			name: "resources merge with the defaults", covers: []string{"resources"},
			values: "resources: {limits: {memory: 1Gi}, requests: {cpu: 250m}}\n",
			check: func(t *testing.T, m *manifest) {
				r := managerContainer(t, m.deployment(t)).Resources
				want := map[string]string{"limits.memory": "1Gi", "limits.cpu": "500m", "requests.cpu": "250m", "requests.memory": "64Mi"}
				got := map[string]resource.Quantity{
					"limits.memory": r.Limits[corev1.ResourceMemory], "limits.cpu": r.Limits[corev1.ResourceCPU],
					"requests.cpu": r.Requests[corev1.ResourceCPU], "requests.memory": r.Requests[corev1.ResourceMemory],
				}
				for k, v := range want {
					if q := got[k]; q.Cmp(resource.MustParse(v)) != 0 {
						t.Errorf("%s = %s, want %s", k, q.String(), v)
					}
				}
			},
		},
		{
			name: "podAnnotations", covers: []string{"podAnnotations"},
			values: "podAnnotations: {example.com/scrape: \"true\"}\n",
			check: func(t *testing.T, m *manifest) {
				a := m.deployment(t).Spec.Template.Annotations
				if a["example.com/scrape"] != "true" || a["kubectl.kubernetes.io/default-container"] != "manager" {
					t.Errorf("pod annotations = %v", a)
				}
			},
		},
		{
			name: "podLabels add to the pods, not to the selector", covers: []string{"podLabels"},
			values: "podLabels: {team: rag}\n",
			check: func(t *testing.T, m *manifest) {
				d := m.deployment(t)
				if d.Spec.Template.Labels["team"] != "rag" {
					t.Errorf("pod labels = %v", d.Spec.Template.Labels)
				}
				if _, ok := d.Spec.Selector.MatchLabels["team"]; ok {
					t.Error("podLabels leaked into the (immutable) selector")
				}
			},
		},
		{
			name: "nodeSelector", covers: []string{"nodeSelector"},
			values: "nodeSelector: {kubernetes.io/arch: arm64}\n",
			check: func(t *testing.T, m *manifest) {
				if ns := m.deployment(t).Spec.Template.Spec.NodeSelector; ns["kubernetes.io/arch"] != "arm64" || len(ns) != 1 {
					t.Errorf("nodeSelector = %v", ns)
				}
			},
		},
		{
			name: "tolerations", covers: []string{"tolerations"},
			values: "tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n",
			check: func(t *testing.T, m *manifest) {
				want := []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
				if got := m.deployment(t).Spec.Template.Spec.Tolerations; !equality.Semantic.DeepEqual(got, want) {
					t.Errorf("tolerations = %+v", got)
				}
			},
		},
		{
			name: "affinity", covers: []string{"affinity"},
			values: `affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux]}]
`,
			check: func(t *testing.T, m *manifest) {
				a := m.deployment(t).Spec.Template.Spec.Affinity
				if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Key != "kubernetes.io/os" {
					t.Errorf("affinity = %+v", a)
				}
			},
		},
		{
			name: "topologySpreadConstraints", covers: []string{"topologySpreadConstraints"},
			values: "topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway}]\n",
			check: func(t *testing.T, m *manifest) {
				c := m.deployment(t).Spec.Template.Spec.TopologySpreadConstraints
				if len(c) != 1 || c[0].TopologyKey != "kubernetes.io/hostname" || c[0].MaxSkew != 1 {
					t.Errorf("topologySpreadConstraints = %+v", c)
				}
			},
		},
		{
			name: "priorityClassName", covers: []string{"priorityClassName"},
			values: "priorityClassName: system-cluster-critical\n",
			check: func(t *testing.T, m *manifest) {
				if p := m.deployment(t).Spec.Template.Spec.PriorityClassName; p != "system-cluster-critical" {
					t.Errorf("priorityClassName = %q", p)
				}
			},
		},
		{
			name: "terminationGracePeriodSeconds", covers: []string{"terminationGracePeriodSeconds"},
			values: "terminationGracePeriodSeconds: 45\n",
			check: func(t *testing.T, m *manifest) {
				if g := m.deployment(t).Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 45 {
					t.Errorf("terminationGracePeriodSeconds = %v", g)
				}
			},
		},
		{
			name: "healthProbe.port moves the flag and the probed port", covers: []string{"healthProbe.port"},
			values: "healthProbe: {port: 9440}\n",
			check: func(t *testing.T, m *manifest) {
				c := managerContainer(t, m.deployment(t))
				p, ok := port(c, "health")
				if !hasArg(c, "--health-probe-bind-address=:9440") || !ok || p.ContainerPort != 9440 || c.LivenessProbe.HTTPGet.Port.StrVal != "health" {
					t.Errorf("args %q, port %+v", c.Args, p)
				}
			},
		},
		{
			name: "metrics.enabled=false turns the endpoint and Service off", covers: []string{"metrics.enabled"},
			values: "metrics: {enabled: false}\n",
			check: func(t *testing.T, m *manifest) {
				c := managerContainer(t, m.deployment(t))
				if !hasArg(c, "--metrics-bind-address=0") {
					t.Errorf("args %q", c.Args)
				}
				if _, ok := port(c, "https"); ok {
					t.Error("metrics port still declared")
				}
				if n := len(m.ofKind("Service")); n != 0 {
					t.Errorf("%d Services rendered", n)
				}
				assertSecureMetricsRBAC(t, m, false)
			},
		},
		{
			name: "metrics.port", covers: []string{"metrics.port"},
			values: "metrics: {port: 9090}\n",
			check: func(t *testing.T, m *manifest) {
				c := managerContainer(t, m.deployment(t))
				p, _ := port(c, "https")
				svc := &corev1.Service{}
				m.typed(t, "Service", fullname+"-metrics", svc)
				if !hasArg(c, "--metrics-bind-address=:9090") || p.ContainerPort != 9090 || svc.Spec.Ports[0].Port != 9090 {
					t.Errorf("args %q, container port %d, service %+v", c.Args, p.ContainerPort, svc.Spec.Ports)
				}
			},
		},
		{
			name: "metrics.secure=false serves plain HTTP without the auth RBAC", covers: []string{"metrics.secure"},
			values: "metrics: {secure: false, port: 8080, serviceMonitor: {enabled: true}}\n",
			check: func(t *testing.T, m *manifest) {
				c := managerContainer(t, m.deployment(t))
				p, ok := port(c, "http-metrics")
				if !hasArg(c, "--metrics-secure=false") || !hasArg(c, "--metrics-bind-address=:8080") || !ok || p.ContainerPort != 8080 {
					t.Errorf("args %q, port %+v", c.Args, p)
				}
				svc := &corev1.Service{}
				m.typed(t, "Service", fullname+"-metrics", svc)
				if svc.Spec.Ports[0].Name != "http-metrics" || svc.Spec.Ports[0].TargetPort.StrVal != "http-metrics" {
					t.Errorf("Service ports %+v", svc.Spec.Ports)
				}
				assertSecureMetricsRBAC(t, m, false)
				eps, _, _ := unstructured.NestedSlice(m.ofKind("ServiceMonitor")[0].u.Object, "spec", "endpoints")
				if ep := eps[0].(map[string]any); ep["scheme"] != "http" || ep["port"] != "http-metrics" || ep["bearerTokenFile"] != nil {
					t.Errorf("ServiceMonitor endpoint %v", ep)
				}
			},
		},
		{
			name: "watchNamespaces: the flag, a Role per namespace, only cluster-scoped rules left in the ClusterRole", covers: []string{"watchNamespaces"},
			values: "watchNamespaces: [team-a, team-b]\n",
			check: func(t *testing.T, m *manifest) {
				if c := managerContainer(t, m.deployment(t)); !hasArg(c, "--watch-namespaces=team-a,team-b") {
					t.Errorf("args %q", c.Args)
				}
				generated := generatedRules(t)
				cr := &rbacv1.ClusterRole{}
				m.typed(t, "ClusterRole", fullname+"-manager", cr)
				for _, g := range ruleGrants(cr.Rules) {
					if !clusterScoped[g.resource] {
						t.Errorf("ClusterRole %s grants namespaced %s cluster-wide", cr.Name, g)
					}
				}
				var nodes bool
				for _, g := range ruleGrants(cr.Rules) {
					nodes = nodes || (g.resource == "nodes" && g.verb == "list")
				}
				if !nodes {
					t.Errorf("ClusterRole %s does not keep nodes list (the memory budget): %+v", cr.Name, cr.Rules)
				}
				for _, ns := range []string{"team-a", "team-b"} {
					role := &rbacv1.Role{}
					o, ok := findIn(m, "Role", ns, fullname+"-manager")
					if !ok {
						t.Fatalf("no Role %s/%s-manager in %v", ns, fullname, m.keys())
					}
					decodeInto(t, o, role)
					// The Role and the ClusterRole together grant exactly the generated rules.
					got := append(ruleGrants(role.Rules), ruleGrants(cr.Rules)...)
					want := ruleGrants(generated)
					sortGrants(got)
					sortGrants(want)
					if !slices.Equal(got, want) {
						t.Errorf("Role %s + ClusterRole grant\n%v\nwant (config/rbac/role.yaml)\n%v", ns, got, want)
					}
					for _, g := range ruleGrants(role.Rules) {
						if clusterScoped[g.resource] {
							t.Errorf("Role %s grants cluster-scoped %s (has no effect)", ns, g)
						}
					}
					rb := &rbacv1.RoleBinding{}
					o, ok = findIn(m, "RoleBinding", ns, fullname+"-manager")
					if !ok {
						t.Fatalf("no RoleBinding %s/%s-manager", ns, fullname)
					}
					decodeInto(t, o, rb)
					if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != fullname+"-manager" || len(rb.Subjects) != 1 ||
						rb.Subjects[0].Name != deployName || rb.Subjects[0].Namespace != namespace {
						t.Errorf("RoleBinding %s: %+v %+v", ns, rb.RoleRef, rb.Subjects)
					}
				}
				// The leader-election Role stays in the release namespace.
				if _, ok := findIn(m, "Role", namespace, fullname+"-leader-election"); !ok {
					t.Errorf("no leader-election Role in %s: %v", namespace, m.keys())
				}
			},
		},
		{
			name: "metrics.serviceMonitor.enabled adds a ServiceMonitor",
			covers: []string{"metrics.serviceMonitor.enabled", "metrics.serviceMonitor.interval",
				"metrics.serviceMonitor.scrapeTimeout", "metrics.serviceMonitor.labels"},
			values: "metrics: {serviceMonitor: {enabled: true, interval: 1m, scrapeTimeout: 15s, labels: {release: prometheus}}}\n",
			check: func(t *testing.T, m *manifest) {
				sms := m.ofKind("ServiceMonitor")
				if len(sms) != 1 {
					t.Fatalf("%d ServiceMonitors: %v", len(sms), m.keys())
				}
				sm := sms[0].u
				if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetNamespace() != namespace || sm.GetLabels()["release"] != "prometheus" {
					t.Errorf("ServiceMonitor metadata: %s %s %v", sm.GetAPIVersion(), sm.GetNamespace(), sm.GetLabels())
				}
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				if len(eps) != 1 {
					t.Fatalf("endpoints = %v", eps)
				}
				ep := eps[0].(map[string]any)
				if ep["port"] != "https" || ep["path"] != "/metrics" || ep["interval"] != "1m" || ep["scrapeTimeout"] != "15s" {
					t.Errorf("endpoint = %v", ep)
				}
				// As kubebuilder scaffolds it: Prometheus's own token, the manager's self-signed certificate.
				skip, _, _ := unstructured.NestedBool(ep, "tlsConfig", "insecureSkipVerify")
				if ep["scheme"] != "https" || ep["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" || !skip {
					t.Errorf("endpoint does not scrape over HTTPS with a bearer token: %v", ep)
				}
				// It must select the metrics Service.
				svc := &corev1.Service{}
				m.typed(t, "Service", fullname+"-metrics", svc)
				sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				for k, v := range sel {
					if svc.Labels[k] != v {
						t.Errorf("ServiceMonitor selects %s=%s, Service labels %v", k, v, svc.Labels)
					}
				}
			},
		},
	}...)
}

// TestValues is the table of what each value changes. Every row also re-checks the restricted
// security context, so no value can weaken it.
func TestValues(t *testing.T) {
	t.Parallel()
	helmBinary(t)
	for _, tc := range valueCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := mustRender(t, tc.values)
			tc.check(t, m)
			assertRestricted(t, m)
		})
	}
}

// TestValuesDocumentedAndCovered: every value in values.yaml sits under a "# --" comment, every
// documented value has a row in TestValues, and values.yaml and values.schema.json list the same
// keys.
func TestValuesDocumentedAndCovered(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	var walk func(n *yamlv3.Node, prefix string, underDoc bool)
	walk = func(n *yamlv3.Node, prefix string, underDoc bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := strings.TrimPrefix(prefix+"."+k.Value, ".")
			isDoc := strings.Contains(k.HeadComment, "# -- ")
			if isDoc {
				documented[path] = true
			}
			if path == "global" {
				continue
			}
			if v.Kind == yamlv3.MappingNode && len(v.Content) > 0 && !isDoc {
				walk(v, path, underDoc || isDoc)
				continue
			}
			if !isDoc && !underDoc {
				t.Errorf("values.yaml: %s has no \"# -- \" comment", path)
			}
		}
	}
	walk(doc.Content[0], "", false)

	covered := map[string]bool{}
	for _, tc := range valueCases() {
		for _, c := range tc.covers {
			if !documented[c] {
				t.Errorf("TestValues row %q covers %q, which values.yaml does not document", tc.name, c)
			}
			covered[c] = true
		}
	}
	for path := range documented {
		if !covered[path] {
			t.Errorf("value %s has no row in TestValues (what does it change?)", path)
		}
	}

	// values.yaml <-> values.schema.json
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	var cmp func(v map[string]any, s map[string]any, prefix string)
	cmp = func(v map[string]any, s map[string]any, prefix string) {
		props, ok := s["properties"].(map[string]any)
		if !ok {
			return
		}
		for k, sub := range props {
			vv, ok := v[k]
			if !ok {
				t.Errorf("values.schema.json declares %s%s, values.yaml does not", prefix, k)
				continue
			}
			if vm, ok := vv.(map[string]any); ok {
				if sm, ok := sub.(map[string]any); ok {
					cmp(vm, sm, prefix+k+".")
				}
			}
		}
		if s["additionalProperties"] == false {
			for k := range v {
				if _, ok := props[k]; !ok {
					t.Errorf("values.yaml has %s%s, values.schema.json does not allow it", prefix, k)
				}
			}
		}
	}
	cmp(values, schema, "")
}

func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	helmBinary(t)
	for name, values := range map[string]string{
		"unknown top-level value":    "replica: 2\n",
		"unknown nested value":       "image: {tags: v1}\n",
		"typo under serviceMonitor":  "metrics: {serviceMonitor: {enable: true}}\n",
		"bad pullPolicy":             "image: {pullPolicy: Sometimes}\n",
		"replicas not a number":      "replicas: two\n",
		"negative replicas":          "replicas: -1\n",
		"bad log level":              "logging: {level: verbose}\n",
		"bad log encoder":            "logging: {encoder: xml}\n",
		"bad port":                   "metrics: {port: 70000}\n",
		"bad quantity":               "resources: {requests: {cpu: lots}}\n",
		"unknown resources key":      "resources: {request: {cpu: 1}}\n",
		"bad interval":               "metrics: {serviceMonitor: {interval: soon}}\n",
		"extraArgs not flags":        "extraArgs: [leader-elect]\n",
		"boolean as string":          "crds: {install: \"false\"}\n",
		"watchNamespaces not a list": "watchNamespaces: team-a\n",
		"bad namespace name":         "watchNamespaces: [Team_A]\n",
		"namespace twice":            "watchNamespaces: [team-a, team-a]\n",
		"metrics.secure as string":   "metrics: {secure: \"no\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := renderChart(t, values)
			if err == nil {
				t.Fatalf("values %q rendered; the schema should reject them", values)
			}
			if !strings.Contains(err.Error(), "schema") {
				t.Errorf("rejected, but not by the schema: %v", err)
			}
		})
	}
}

func TestRenderFails(t *testing.T) {
	t.Parallel()
	helmBinary(t)
	for name, tc := range map[string]struct{ values, want string }{
		"replicas>1 without leader election": {"replicas: 2\nleaderElection: {enabled: false}\n", "leaderElection"},
		"no ServiceAccount to use":           {"serviceAccount: {create: false}\n", "serviceAccount.name is required"},
		"ServiceMonitor without metrics":     {"metrics: {enabled: false, serviceMonitor: {enabled: true}}\n", "metrics.enabled"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := renderChart(t, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want a render error mentioning %q, got %v", tc.want, err)
			}
		})
	}
}

// kustomize renders a kustomization with $KUSTOMIZE (built from its module by `make kustomize`);
// without it the test is skipped, or fails under RAG_REQUIRE_HELM=1 (CI), which needs both.
func kustomize(t *testing.T, dir string) *manifest {
	t.Helper()
	bin := os.Getenv("KUSTOMIZE")
	if bin == "" {
		if os.Getenv("RAG_REQUIRE_HELM") != "" {
			t.Fatal("KUSTOMIZE is not set: run `make kustomize` (make test-chart and make test set it)")
		}
		t.Skip("KUSTOMIZE is not set: run `make kustomize` to render config/")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "build", dir)
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	m, err := parseManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestKustomizeMatchesChart: config/default renders the same objects as the chart's defaults
// for release "rag-operator" in rag-operator-system (plus the Namespace), with the same pod spec,
// RBAC rules, Service and CRD; config/prometheus matches the chart's ServiceMonitor. The
// dashboard and alerts (monitoring.*) are chart-only and off by default, so they are not compared.
func TestKustomizeMatchesChart(t *testing.T) {
	t.Parallel()
	chart := mustRender(t, "")
	kz := kustomize(t, "config/default")

	var kzKeys []string
	for _, k := range kz.keys() {
		if !strings.HasPrefix(k, "Namespace ") {
			kzKeys = append(kzKeys, k)
		}
	}
	if !slices.Equal(kzKeys, chart.keys()) {
		t.Fatalf("objects differ:\nkustomize %v\n    chart %v", kzKeys, chart.keys())
	}
	if ns := kz.ofKind("Namespace"); len(ns) != 1 || ns[0].u.GetName() != namespace {
		t.Errorf("config/default should create namespace %s: %v", namespace, kz.keys())
	}

	kd, cd := kz.deployment(t), chart.deployment(t)
	if !equality.Semantic.DeepEqual(kd.Spec.Template.Spec, cd.Spec.Template.Spec) {
		a, _ := yaml.Marshal(kd.Spec.Template.Spec)
		b, _ := yaml.Marshal(cd.Spec.Template.Spec)
		t.Errorf("pod specs differ\nkustomize:\n%s\nchart:\n%s", a, b)
	}
	if !equality.Semantic.DeepEqual(kd.Spec.Selector, cd.Spec.Selector) || *kd.Spec.Replicas != *cd.Spec.Replicas {
		t.Errorf("selector/replicas differ: %v/%d vs %v/%d", kd.Spec.Selector, *kd.Spec.Replicas, cd.Spec.Selector, *cd.Spec.Replicas)
	}
	if !equality.Semantic.DeepEqual(kd.Spec.Template.Annotations, cd.Spec.Template.Annotations) {
		t.Errorf("pod annotations differ: %v vs %v", kd.Spec.Template.Annotations, cd.Spec.Template.Annotations)
	}

	for _, o := range chart.objs {
		k, _ := kz.find(o.u.GetKind(), o.u.GetName())
		switch o.u.GetKind() {
		case "ClusterRole", "Role":
			var a, b rbacv1.ClusterRole
			decodeInto(t, k, &a)
			decodeInto(t, o, &b)
			if !equality.Semantic.DeepEqual(a.Rules, b.Rules) {
				t.Errorf("%s rules differ:\nkustomize %+v\n    chart %+v", o.key(), a.Rules, b.Rules)
			}
		case "ClusterRoleBinding", "RoleBinding":
			var a, b rbacv1.RoleBinding
			decodeInto(t, k, &a)
			decodeInto(t, o, &b)
			if !equality.Semantic.DeepEqual(a.RoleRef, b.RoleRef) || !equality.Semantic.DeepEqual(a.Subjects, b.Subjects) {
				t.Errorf("%s differs: %+v %+v vs %+v %+v", o.key(), a.RoleRef, a.Subjects, b.RoleRef, b.Subjects)
			}
		case "Service":
			var a, b corev1.Service
			decodeInto(t, k, &a)
			decodeInto(t, o, &b)
			if !equality.Semantic.DeepEqual(a.Spec, b.Spec) {
				t.Errorf("%s spec differs: %+v vs %+v", o.key(), a.Spec, b.Spec)
			}
		case "CustomResourceDefinition":
			if !equality.Semantic.DeepEqual(k.u.Object["spec"], o.u.Object["spec"]) {
				t.Errorf("%s spec differs", o.key())
			}
		}
	}

	// config/prometheus (opt-in in config/default) against the chart's ServiceMonitor.
	prom := kustomize(t, "config/prometheus")
	withSM := mustRender(t, "metrics: {serviceMonitor: {enabled: true}}\n")
	ks, cs := prom.ofKind("ServiceMonitor"), withSM.ofKind("ServiceMonitor")
	if len(ks) != 1 || len(cs) != 1 {
		t.Fatalf("ServiceMonitors: kustomize %d, chart %d", len(ks), len(cs))
	}
	if !equality.Semantic.DeepEqual(ks[0].u.Object["spec"], cs[0].u.Object["spec"]) {
		t.Errorf("ServiceMonitor specs differ:\nkustomize %v\n    chart %v", ks[0].u.Object["spec"], cs[0].u.Object["spec"])
	}
}

// TestChartKinds: the chart with everything on renders exactly these kinds (the inventory
// reviewers and `make images`/deploy docs rely on).
func TestChartKinds(t *testing.T) {
	t.Parallel()
	m := mustRender(t, "metrics: {serviceMonitor: {enabled: true}}\nreplicas: 2\nmonitoring: {dashboards: {enabled: true}, prometheusRule: {enabled: true}}\n")
	want := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "Deployment", "NetworkPolicy", "PrometheusRule", "Role", "RoleBinding", "Service", "ServiceAccount", "ServiceMonitor"}
	if got := m.kinds(); !slices.Equal(got, want) {
		t.Errorf("kinds = %v, want %v", got, want)
	}
	for _, o := range m.objs {
		namespaced := !slices.Contains([]string{"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}, o.u.GetKind())
		if namespaced != (o.u.GetNamespace() == namespace) {
			t.Errorf("%s: namespace %q", o.key(), o.u.GetNamespace())
		}
	}
}

// TestPackage: the packaged chart (what gets published) renders exactly what the chart folder
// renders, so .helmignore keeps files/ (the CRD and RBAC sources) in the package.
func TestPackage(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp(helmHome, "package-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runHelm(t, "package", chartRelPath, "--destination", dir); err != nil {
		t.Fatal(err)
	}
	tgz := filepath.Join(dir, "rag-operator-0.1.0.tgz")
	fromPkg, err := runHelm(t, "template", release, tgz, "--namespace", namespace)
	if err != nil {
		t.Fatal(err)
	}
	fromDir, err := runHelm(t, "template", release, chartRelPath, "--namespace", namespace)
	if err != nil {
		t.Fatal(err)
	}
	if fromPkg != fromDir {
		t.Error("the packaged chart renders differently from charts/rag-operator")
	}
}

// assertSecureMetricsRBAC: with secure metrics the manager may create TokenReviews and
// SubjectAccessReviews (bound to its ServiceAccount) and a metrics-reader ClusterRole exists for
// scrapers; without them neither is rendered.
func assertSecureMetricsRBAC(t *testing.T, m *manifest, want bool) {
	t.Helper()
	auth, okAuth := m.find("ClusterRole", fullname+"-metrics-auth-role")
	_, okBinding := m.find("ClusterRoleBinding", fullname+"-metrics-auth-rolebinding")
	reader, okReader := m.find("ClusterRole", fullname+"-metrics-reader")
	if !want {
		if okAuth || okBinding || okReader {
			t.Errorf("metrics auth RBAC rendered without secure metrics: %v", m.keys())
		}
		return
	}
	if !okAuth || !okBinding || !okReader {
		t.Fatalf("metrics auth RBAC missing: %v", m.keys())
	}
	var ar, rr rbacv1.ClusterRole
	decodeInto(t, auth, &ar)
	decodeInto(t, reader, &rr)
	got := ruleGrants(ar.Rules)
	sortGrants(got)
	wantGrants := []grant{{"authentication.k8s.io", "tokenreviews", "create"}, {"authorization.k8s.io", "subjectaccessreviews", "create"}}
	if !slices.Equal(got, wantGrants) {
		t.Errorf("metrics auth ClusterRole grants %v, want %v", got, wantGrants)
	}
	if len(rr.Rules) != 1 || !slices.Equal(rr.Rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(rr.Rules[0].Verbs, []string{"get"}) {
		t.Errorf("metrics-reader rules = %+v", rr.Rules)
	}
	crb := &rbacv1.ClusterRoleBinding{}
	m.typed(t, "ClusterRoleBinding", fullname+"-metrics-auth-rolebinding", crb)
	if crb.RoleRef.Name != fullname+"-metrics-auth-role" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != deployName {
		t.Errorf("metrics auth binding: %+v %+v", crb.RoleRef, crb.Subjects)
	}
}

// clusterScoped are the resources the generated rules may name that are not namespaced.
var clusterScoped = map[string]bool{"nodes": true, "namespaces": true, "persistentvolumes": true, "storageclasses": true,
	"customresourcedefinitions": true, "clusterroles": true, "clusterrolebindings": true, "priorityclasses": true,
	"runtimeclasses": true, "csinodes": true, "csidrivers": true, "volumeattachments": true}

// grant is one (group, resource, verb) a rule allows.
type grant struct{ group, resource, verb string }

func (g grant) String() string { return g.group + "/" + g.resource + ":" + g.verb }

func ruleGrants(rules []rbacv1.PolicyRule) []grant {
	var out []grant
	for _, r := range rules {
		for _, gr := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, grant{gr, res, v})
				}
			}
		}
	}
	return out
}

func sortGrants(g []grant) {
	sort.Slice(g, func(i, j int) bool { return g[i].String() < g[j].String() })
}

func generatedRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(data, cr); err != nil {
		t.Fatal(err)
	}
	return cr.Rules
}

// findIn is find for a namespaced object.
func findIn(m *manifest, kind, ns, name string) (object, bool) {
	for _, o := range m.ofKind(kind) {
		if o.u.GetName() == name && o.u.GetNamespace() == ns {
			return o, true
		}
	}
	return object{}, false
}

// notes renders the chart's NOTES.txt (helm install --dry-run=client, no cluster).
func notes(t *testing.T, values string) string {
	t.Helper()
	args := append([]string{"install", release, chartRelPath, "--namespace", namespace, "--dry-run=client", "--hide-notes=false"}, writeValues(t, values)...)
	out, err := runHelm(t, args...)
	if err != nil {
		// Older flag sets have no --hide-notes; notes are shown by default.
		args = slices.DeleteFunc(args, func(a string) bool { return a == "--hide-notes=false" })
		if out, err = runHelm(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	_, after, ok := strings.Cut(out, "NOTES:")
	if !ok {
		t.Fatalf("no NOTES in\n%s", out)
	}
	return after
}

func TestNotes(t *testing.T) {
	t.Parallel()
	helmBinary(t)
	for name, tc := range map[string]struct {
		values    string
		want, not []string
	}{
		"defaults": {"", []string{"The RagAppliance CRD was installed", "every namespace",
			"https://rag-operator-metrics.rag-operator-system.svc:8443/metrics", "--clusterrole=rag-operator-metrics-reader"}, []string{"plain HTTP"}},
		"second release": {"crds: {install: false}\nwatchNamespaces: [team-b]\n",
			[]string{"crds.install is false: this release reuses the RagAppliance CRD", "in these namespaces only: team-b"},
			[]string{"CRD was installed"}},
		"plain metrics": {"metrics: {secure: false}\n", []string{"plain HTTP, no authentication"}, []string{"metrics-reader"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := notes(t, tc.values)
			for _, w := range tc.want {
				if !strings.Contains(n, w) {
					t.Errorf("NOTES lack %q:\n%s", w, n)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(n, w) {
					t.Errorf("NOTES should not say %q:\n%s", w, n)
				}
			}
		})
	}
}

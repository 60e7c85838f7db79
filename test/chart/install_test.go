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

package chart_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// startAPIServer starts a kube-apiserver and etcd (envtest) and returns a client and a kubeconfig
// file for helm. Without the binaries the test is skipped, unless KUBEBUILDER_ASSETS names them
// and RAG_REQUIRE_HELM=1 (make test in CI).
func startAPIServer(t *testing.T) (client.Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a kube-apiserver: skipped in -short mode")
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	required := assets != "" && os.Getenv("RAG_REQUIRE_HELM") == "1"
	if assets == "" {
		cache, _ := os.UserCacheDir()
		assets = filepath.Join(cache, "rag-operator", "k8s-v1.37.2")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		msg := "no kube-apiserver in " + assets + ": run `make k8s-assets` (or set KUBEBUILDER_ASSETS)"
		if required {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "helm", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, path
}

// TestInstallTwice installs the chart into a real API server three times, as README's Install
// section describes: the first release owns the CRD; a second one with the defaults and a third
// one with crds.install=false both install (no CRD ownership conflict), each bound to its own
// namespaces, and their NOTES name the CRD's owner; the first release still upgrades the CRD; a
// release reusing the first one's name in another namespace is refused with a clear message.
func TestInstallTwice(t *testing.T) {
	t.Parallel()
	helmBinary(t)
	c, kubeconfig := startAPIServer(t)
	ctx := context.Background()
	for _, ns := range []string{"ops-a", "ops-b", "ops-c", "ops-d", "team-b", "team-c"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	helm := func(args ...string) (string, error) {
		return runHelm(t, append(args, "--kubeconfig", kubeconfig)...)
	}
	const crdName = "ragappliances.rag.ragstack.dev"
	crdOwner := func() string {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
			t.Fatal(err)
		}
		return crd.Annotations["meta.helm.sh/release-name"] + "/" + crd.Annotations["meta.helm.sh/release-namespace"]
	}

	out, err := helm("install", "rag-operator", chartRelPath, "-n", "ops-a")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "The RagAppliance CRD was installed") || crdOwner() != "rag-operator/ops-a" {
		t.Fatalf("first release did not install the CRD (owner %s):\n%s", crdOwner(), out)
	}

	// A second release with the defaults (crds.install=true): the CRD is left to its owner.
	out, err = helm("install", "rag-operator-team-b", chartRelPath, "-n", "ops-b", "--set", "watchNamespaces={team-b}")
	if err != nil {
		t.Fatalf("second release: %v", err)
	}
	if !strings.Contains(out, "owned by release rag-operator in namespace ops-a") || !strings.Contains(out, "NOT installed by this release") {
		t.Errorf("second release's NOTES do not name the CRD's owner:\n%s", out)
	}
	// The documented pattern: crds.install=false.
	out, err = helm("install", "rag-operator-team-c", chartRelPath, "-n", "ops-c", "--set", "crds.install=false", "--set", "watchNamespaces={team-c}")
	if err != nil {
		t.Fatalf("third release: %v", err)
	}
	if !strings.Contains(out, "crds.install is false: this release reuses the RagAppliance CRD in the cluster ("+crdName+" is owned by release rag-operator in namespace ops-a)") {
		t.Errorf("third release's NOTES:\n%s", out)
	}
	if got := crdOwner(); got != "rag-operator/ops-a" {
		t.Errorf("CRD owner changed to %s", got)
	}
	for _, ns := range []string{"team-b", "team-c"} {
		rb := &rbacv1.RoleBindingList{}
		if err := c.List(ctx, rb, client.InNamespace(ns)); err != nil || len(rb.Items) != 1 {
			t.Errorf("RoleBindings in %s: %v %v", ns, rb.Items, err)
		}
	}

	// The owner still upgrades the CRD.
	if _, err := helm("upgrade", "rag-operator", chartRelPath, "-n", "ops-a", "--set", "crds.keep=false"); err != nil {
		t.Fatalf("upgrade of the CRD's owner: %v", err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
		t.Fatal(err)
	}
	if _, kept := crd.Annotations["helm.sh/resource-policy"]; kept {
		t.Errorf("the owner's upgrade did not reach the CRD: annotations %v", crd.Annotations)
	}

	// The same release name in another namespace would share the cluster-scoped names.
	_, err = helm("install", "rag-operator", chartRelPath, "-n", "ops-d", "--set", "crds.install=false")
	if err == nil || !strings.Contains(err.Error(), "belongs to release rag-operator in namespace ops-a") {
		t.Errorf("same release name in another namespace: want a clear refusal, got %v", err)
	}
}

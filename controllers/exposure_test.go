package controllers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// TestExposureGolden pins the Ingress and the HTTPRoute byte for byte.
func TestExposureGolden(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	ra.Spec.RagServer.Ingress = &ragv1.IngressSpec{ClassName: ptr.To("nginx"), Host: "rag.example.com", TLSSecretName: "rag-tls",
		Annotations: map[string]string{"cert-manager.io/cluster-issuer": "letsencrypt", "nginx.ingress.kubernetes.io/proxy-read-timeout": "300"}}
	ra.Spec.RagServer.GatewayRoute = &ragv1.GatewayRouteSpec{ParentRefs: []ragv1.GatewayParentRef{{Name: "public", Namespace: "gateways", SectionName: "https"}}, Hostnames: []string{"rag.example.com"}}
	var got []byte
	for _, o := range []any{ragServerIngress(ra), ragServerHTTPRoute(ra)} {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		got = append(append(got, "---\n"...), b...)
	}
	checkGolden(t, "dgx-spark-exposure.golden.yaml", got)
}

// TestIngressAndGatewayRoute: a declared Ingress is applied and removed with the spec; an
// HTTPRoute on a cluster without the Gateway API is a condition saying so, and once the CRD is
// installed the route is applied, then removed when the spec drops it.
func TestIngressAndGatewayRoute(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	u, err := createManifest(ns, manifest("exposed", "ragServer:\n  ingress: {className: nginx, host: rag.example.com, tlsSecretName: rag-tls}\n  gatewayRoute: {parentRefs: [{name: public, namespace: gateways}], hostnames: [rag.example.com]}"))
	if err != nil {
		t.Fatal(err)
	}
	ra := &ragv1.RagAppliance{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, ra)
	key := client.ObjectKey{Namespace: ns, Name: ragServerName(ra)}
	ing := &networkingv1.Ingress{}
	eventually(t, settle, func() error { return k8s.Get(context.Background(), key, ing) })
	if ing.Spec.TLS[0].SecretName != "rag-tls" || ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name != ragServerName(ra) {
		t.Errorf("Ingress %+v", ing.Spec)
	}
	eventually(t, settle, func() error {
		_ = k8s.Get(context.Background(), client.ObjectKeyFromObject(ra), ra)
		c := meta.FindStatusCondition(ra.Status.Conditions, ragv1.ConditionRagServerReady)
		if c == nil || !strings.Contains(c.Message, "Gateway API") || !strings.Contains(c.Message, "not installed") {
			return fmt.Errorf("RagServerReady %+v", c)
		}
		return nil
	})

	installHTTPRouteCRD(t)
	route := &unstructured.Unstructured{}
	route.SetAPIVersion("gateway.networking.k8s.io/v1")
	route.SetKind("HTTPRoute")
	eventually(t, settle, func() error { return k8s.Get(context.Background(), key, route) })
	hosts, _, _ := unstructured.NestedStringSlice(route.Object, "spec", "hostnames")
	if len(hosts) != 1 || hosts[0] != "rag.example.com" {
		t.Errorf("route hostnames %v", hosts)
	}

	patchSpec(t, ra, `{"spec":{"ragServer":{"ingress":null,"gatewayRoute":null}}}`)
	eventually(t, settle, func() error {
		if err := k8s.Get(context.Background(), key, &networkingv1.Ingress{}); err == nil {
			return fmt.Errorf("Ingress still there")
		}
		r := route.DeepCopy()
		if err := k8s.Get(context.Background(), key, r); err == nil && r.GetDeletionTimestamp() == nil {
			return fmt.Errorf("HTTPRoute still there")
		}
		return nil
	})
}

// installHTTPRouteCRD installs the Gateway API's HTTPRoute CRD from the module the operator
// builds against (sigs.k8s.io/gateway-api ships its CRDs).
func installHTTPRouteCRD(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("locate sigs.k8s.io/gateway-api: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(context.Background(), crd); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	eventually(t, settle, func() error {
		got := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(crd), got); err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("CRD not established")
	})
}

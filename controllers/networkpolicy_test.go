package controllers

import (
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// peer is a pod of the test topology: the appliance's pods with the labels the builders give
// them, the operator, and strangers.
type peer struct {
	name, namespace string
	labels          map[string]string
}

func appliancePeers(ra *ragv1.RagAppliance) map[string]peer {
	ns := ra.Namespace
	job := modelJob(ra, ra.Spec.Models[0], "img")
	return map[string]peer{
		"ollama":         {"ollama", ns, ollamaDeployment(ra).Spec.Template.Labels},
		"qdrant":         {"qdrant", ns, qdrantStatefulSet(ra).Spec.Template.Labels},
		"rag-server":     {"rag-server", ns, ragServerDeployment(ra).Spec.Template.Labels},
		"model-job":      {"model-job", ns, job.Spec.Template.Labels},
		"operator":       {"operator", "rag-operator-system", map[string]string{"control-plane": "controller-manager", "app.kubernetes.io/name": "rag-operator"}},
		"same-ns-pod":    {"same-ns-pod", ns, map[string]string{"app": "curl"}},
		"other-ns-pod":   {"other-ns-pod", "team-b", map[string]string{"app": "curl"}},
		"fake-operator":  {"fake-operator", "team-b", map[string]string{"control-plane": "controller-manager"}},
		"other-rag-pods": {"other-rag-pods", "team-b", ragServerDeployment(ra).Spec.Template.Labels},
	}
}

// allowed asks the policy engine (cyclonus, the matcher behind the Kubernetes network-policy-api
// project's policy assistant) whether src may open dst:port/TCP.
func allowed(policy *matcher.Policy, src, dst peer, port int) bool {
	internal := func(p peer) *matcher.TrafficPeer {
		return &matcher.TrafficPeer{IP: "10.0.0.1", Internal: &matcher.InternalPeer{
			PodLabels: p.labels, Namespace: p.namespace, NamespaceLabels: map[string]string{corev1.LabelMetadataName: p.namespace},
		}}
	}
	return policy.IsTrafficAllowed(&matcher.Traffic{
		Source: internal(src), Destination: internal(dst), ResolvedPort: port, Protocol: corev1.ProtocolTCP,
	}).IsAllowed()
}

func TestNetworkPoliciesLockTheDataPlane(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	ra.Spec.NetworkPolicy.Enabled = true
	policy := matcher.BuildNetworkPolicies(false, networkPolicies(ra, "rag-operator-system"))
	p := appliancePeers(ra)
	for _, tc := range []struct {
		src, dst string
		port     int
		want     bool
	}{
		{"rag-server", "ollama", ollamaPort, true},
		{"model-job", "ollama", ollamaPort, true},
		{"operator", "ollama", ollamaPort, true},
		{"same-ns-pod", "ollama", ollamaPort, false},
		{"other-ns-pod", "ollama", ollamaPort, false},
		{"fake-operator", "ollama", ollamaPort, false}, // the operator's labels, in another namespace
		{"other-rag-pods", "ollama", ollamaPort, false},
		{"qdrant", "ollama", ollamaPort, false},
		{"rag-server", "qdrant", qdrantGRPCPort, true},
		{"rag-server", "qdrant", qdrantHTTPPort, true},
		{"operator", "qdrant", qdrantGRPCPort, true},
		{"model-job", "qdrant", qdrantGRPCPort, false},
		{"same-ns-pod", "qdrant", qdrantHTTPPort, false},
		{"other-ns-pod", "qdrant", qdrantGRPCPort, false},
		{"same-ns-pod", "rag-server", ragServerPort, true}, // default: any source (it authenticates)
		{"other-ns-pod", "rag-server", ragServerPort, true},
		{"other-ns-pod", "rag-server", 9999, false},
		{"rag-server", "model-job", 8080, false},
		{"rag-server", "ollama", 22, false},
	} {
		if got := allowed(policy, p[tc.src], p[tc.dst], tc.port); got != tc.want {
			t.Errorf("%s → %s:%d allowed=%v, want %v", tc.src, tc.dst, tc.port, got, tc.want)
		}
	}

	// A restricted RAG server source list and restricted egress.
	ra.Spec.NetworkPolicy.RagServerFrom = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "ingress-nginx"}}}}
	ra.Spec.NetworkPolicy.RestrictEgress = true
	policy = matcher.BuildNetworkPolicies(false, networkPolicies(ra, "rag-operator-system"))
	ingress := peer{"ingress", "ingress-nginx", map[string]string{"app": "nginx"}}
	for _, tc := range []struct {
		src, dst peer
		port     int
		want     bool
	}{
		{ingress, p["rag-server"], ragServerPort, true},
		{p["other-ns-pod"], p["rag-server"], ragServerPort, false},
		{p["rag-server"], p["ollama"], ollamaPort, true}, // egress and ingress both allow it
		{p["rag-server"], p["other-ns-pod"], 443, false}, // egress restricted
		{p["qdrant"], p["rag-server"], ragServerPort, false},
		{p["model-job"], p["ollama"], ollamaPort, true},
	} {
		if got := allowed(policy, tc.src, tc.dst, tc.port); got != tc.want {
			t.Errorf("restricted: %s → %s:%d allowed=%v, want %v", tc.src.name, tc.dst.name, tc.port, got, tc.want)
		}
	}

	ra.Spec.NetworkPolicy.Enabled = false
	if got := networkPolicies(ra, "x"); got != nil {
		t.Errorf("disabled: %d policies rendered", len(got))
	}
}

// TestNetworkPoliciesGolden pins the rendered policies byte for byte.
func TestNetworkPoliciesGolden(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	ra.Spec.NetworkPolicy.Enabled = true
	var got []byte
	for _, np := range networkPolicies(ra, "rag-operator-system") {
		b, err := yaml.Marshal(np)
		if err != nil {
			t.Fatal(err)
		}
		got = append(append(got, "---\n"...), b...)
	}
	checkGolden(t, "dgx-spark-networkpolicies.golden.yaml", got)
}

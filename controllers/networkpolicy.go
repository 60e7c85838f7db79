package controllers

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// OperatorPodLabels select the manager's pods (the chart's and config/manager's
// control-plane label), the one client outside the appliance that reaches Ollama and Qdrant.
var OperatorPodLabels = map[string]string{"control-plane": "controller-manager"}

// operatorPeer is the manager's pods: in its namespace when known, else in any namespace.
func operatorPeer(operatorNamespace string) networkingv1.NetworkPolicyPeer {
	ns := &metav1.LabelSelector{}
	if operatorNamespace != "" {
		ns.MatchLabels = map[string]string{corev1.LabelMetadataName: operatorNamespace}
	}
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: ns, PodSelector: &metav1.LabelSelector{MatchLabels: OperatorPodLabels}}
}

func podPeer(ra *ragv1.RagAppliance, component string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: selectorLabels(ra, component)}}
}

func tcpPorts(ports ...int) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, 0, len(ports))
	for _, p := range ports {
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(int32(p)))})
	}
	return out
}

// dnsEgress allows name lookups wherever the cluster's resolver runs (a node-local cache, CoreDNS).
func dnsEgress() networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{Ports: []networkingv1.NetworkPolicyPort{
		{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))},
		{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(53))},
	}}
}

func networkPolicy(ra *ragv1.RagAppliance, name, component string, ingress []networkingv1.NetworkPolicyIngressRule, egress []networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   typeMeta("networking.k8s.io/v1", "NetworkPolicy"),
		ObjectMeta: objectMeta(ra, name, component),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selectorLabels(ra, component)},
			Ingress:     ingress,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if ra.Spec.NetworkPolicy.RestrictEgress {
		np.Spec.Egress = egress
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	}
	return np
}

// networkPolicies lock the data plane (nil when disabled):
//   - Ollama (no authentication of its own) from the RAG server, the model Jobs and the operator;
//   - Qdrant (every chunk's text is in its payload) from the RAG server and the operator;
//   - the RAG server from spec.networkPolicy.ragServerFrom (any source when empty: it
//     authenticates every request);
//   - the model Jobs from nowhere (they serve nothing).
//
// With restrictEgress each also limits where its pods may connect: DNS, the stack, and for
// Ollama and the model Jobs the registry peers on 443.
func networkPolicies(ra *ragv1.RagAppliance, operatorNamespace string) []*networkingv1.NetworkPolicy {
	spec := ra.Spec.NetworkPolicy
	if !spec.Enabled {
		return nil
	}
	registry := networkingv1.NetworkPolicyEgressRule{Ports: tcpPorts(443), To: spec.RegistryEgress}
	toOllama := networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{podPeer(ra, componentOllama)}, Ports: tcpPorts(ollamaPort)}
	toQdrant := networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{podPeer(ra, componentQdrant)}, Ports: tcpPorts(qdrantHTTPPort, qdrantGRPCPort)}

	var ollamaEgress []networkingv1.NetworkPolicyEgressRule
	var jobEgress []networkingv1.NetworkPolicyEgressRule
	if len(spec.RegistryEgress) > 0 {
		ollamaEgress = []networkingv1.NetworkPolicyEgressRule{dnsEgress(), registry}
		jobEgress = []networkingv1.NetworkPolicyEgressRule{dnsEgress(), toOllama, registry}
	} else {
		ollamaEgress = []networkingv1.NetworkPolicyEgressRule{dnsEgress()}
		jobEgress = []networkingv1.NetworkPolicyEgressRule{dnsEgress(), toOllama}
	}
	ragFrom := []networkingv1.NetworkPolicyIngressRule{{Ports: tcpPorts(ragServerPort)}}
	if len(spec.RagServerFrom) > 0 {
		ragFrom[0].From = spec.RagServerFrom
	}
	// Metrics hold counts and latencies, never document text: any source (Prometheus runs
	// wherever the cluster put it, and the operator reads the SLO figures there).
	ragFrom = append(ragFrom, networkingv1.NetworkPolicyIngressRule{Ports: tcpPorts(ragServerMetricsPort)})
	ollamaFrom := []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{podPeer(ra, componentRagServer), podPeer(ra, componentModelSync), operatorPeer(operatorNamespace)},
		Ports: tcpPorts(ollamaPort),
	}}
	if ra.Spec.Monitoring.OllamaExporter {
		ollamaFrom = append(ollamaFrom, networkingv1.NetworkPolicyIngressRule{Ports: tcpPorts(ollamaExporterPort)})
	}
	qdrantFrom := []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{podPeer(ra, componentRagServer), operatorPeer(operatorNamespace)},
		Ports: tcpPorts(qdrantHTTPPort, qdrantGRPCPort),
	}}
	qdrantEgress := []networkingv1.NetworkPolicyEgressRule{dnsEgress()}
	if qdrantClustered(ra) {
		// Peers replicate and forward over P2P, and a peer proxies REST/gRPC calls for shards
		// it does not hold.
		peers := []networkingv1.NetworkPolicyPeer{podPeer(ra, componentQdrant)}
		qdrantFrom = append(qdrantFrom, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: tcpPorts(qdrantHTTPPort, qdrantGRPCPort, qdrantP2PPort)})
		qdrantEgress = append(qdrantEgress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: tcpPorts(qdrantHTTPPort, qdrantGRPCPort, qdrantP2PPort)})
	}
	ragEgress := []networkingv1.NetworkPolicyEgressRule{dnsEgress(), toOllama, toQdrant}
	if ragServerShared(ra) {
		// The database's address is inside a Secret the operator does not parse: PostgreSQL's
		// port, to any destination.
		ragEgress = append(ragEgress, networkingv1.NetworkPolicyEgressRule{Ports: tcpPorts(postgresPort)})
	}
	return []*networkingv1.NetworkPolicy{
		networkPolicy(ra, ollamaName(ra), componentOllama, ollamaFrom, ollamaEgress),
		networkPolicy(ra, qdrantName(ra), componentQdrant, qdrantFrom, qdrantEgress),
		networkPolicy(ra, ragServerName(ra), componentRagServer, ragFrom, ragEgress),
		networkPolicy(ra, ra.Name+"-model-sync", componentModelSync, nil, jobEgress),
	}
}

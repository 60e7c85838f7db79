package controllers

import (
	corev1 "k8s.io/api/core/v1"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// Ports the components listen on.
const (
	ollamaPort     = 11434
	qdrantHTTPPort = 6333
	qdrantGRPCPort = 6334
	ragServerPort  = 8080
	// qdrantP2PPort is where Qdrant peers talk in distributed mode.
	qdrantP2PPort = 6335
	// ragServerMetricsPort serves the RAG server's /metrics without a key, for Prometheus and
	// the operator's SLO status (the API port's /metrics needs an admin key).
	ragServerMetricsPort = 9090
	// ollamaExporterPort serves the Ollama exporter sidecar's metrics.
	ollamaExporterPort = 9400
	// postgresPort is PostgreSQL's default port, opened for egress when restricted.
	postgresPort = 5432
)

// Component names, used in labels and child names.
const (
	componentOllama    = "ollama"
	componentQdrant    = "qdrant"
	componentRagServer = "rag-server"
)

// FieldOwner is the single server-side apply field manager of every child.
const FieldOwner = "rag-operator"

// ConfigHashAnnotation on a pod template carries the hash of the rendered configuration, so a
// change rolls the pods.
const ConfigHashAnnotation = "rag.ragstack.dev/config-hash"

func ollamaName(ra *ragv1.RagAppliance) string       { return ra.Name + "-ollama" }
func ollamaModelsPVC(ra *ragv1.RagAppliance) string  { return ra.Name + "-ollama-models" }
func qdrantName(ra *ragv1.RagAppliance) string       { return ra.Name + "-qdrant" }
func qdrantHeadless(ra *ragv1.RagAppliance) string   { return ra.Name + "-qdrant-headless" }
func ragServerName(ra *ragv1.RagAppliance) string    { return ra.Name + "-rag-server" }
func ragServerDataPVC(ra *ragv1.RagAppliance) string { return ra.Name + "-rag-server-data" }

// generatedKeysSecret is the API key Secret the operator creates when the spec names none.
func generatedKeysSecret(ra *ragv1.RagAppliance) string { return ra.Name + "-rag-api-keys" }

// generatedQdrantKeysSecret is the Qdrant API key Secret the operator creates when the spec
// names none.
func generatedQdrantKeysSecret(ra *ragv1.RagAppliance) string { return ra.Name + "-qdrant-api-key" }

const (
	qdrantKeyField         = "api-key"
	qdrantReadOnlyKeyField = "read-only-api-key"
)

// qdrantKeyRefs are the Secret keys of Qdrant's API key and read-only key (nil: none).
func qdrantKeyRefs(ra *ragv1.RagAppliance) (key, readOnly *corev1.SecretKeySelector) {
	q := ra.Spec.Qdrant
	if q.APIKeySecretRef != nil {
		return q.APIKeySecretRef.DeepCopy(), q.ReadOnlyAPIKeySecretRef.DeepCopy()
	}
	name := corev1.LocalObjectReference{Name: generatedQdrantKeysSecret(ra)}
	ro := &corev1.SecretKeySelector{LocalObjectReference: name, Key: qdrantReadOnlyKeyField}
	if q.ReadOnlyAPIKeySecretRef != nil {
		ro = q.ReadOnlyAPIKeySecretRef.DeepCopy()
	}
	return &corev1.SecretKeySelector{LocalObjectReference: name, Key: qdrantKeyField}, ro
}

func apiKeysSecretName(ra *ragv1.RagAppliance) string {
	if ref := ra.Spec.RagServer.Auth.APIKeysSecretRef; ref != nil && ref.Name != "" {
		return ref.Name
	}
	return generatedKeysSecret(ra)
}

// labels are the recommended app.kubernetes.io labels; selectorLabels the stable subset
// used in selectors (immutable on Deployments and StatefulSets).
func labels(ra *ragv1.RagAppliance, component string) map[string]string {
	l := selectorLabels(ra, component)
	l["app.kubernetes.io/part-of"] = "rag-appliance"
	l["app.kubernetes.io/managed-by"] = "rag-operator"
	return l
}

func selectorLabels(ra *ragv1.RagAppliance, component string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     component,
		"app.kubernetes.io/instance": ra.Name,
	}
}

func serviceURL(ra *ragv1.RagAppliance, svc string, port int) string {
	return "http://" + svc + "." + ra.Namespace + ".svc:" + itoa(port)
}

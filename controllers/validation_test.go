package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// createManifest creates a RagAppliance from YAML the way kubectl does (strict field
// validation) and returns the API server's answer.
func createManifest(ns, manifest string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		return nil, err
	}
	u.SetNamespace(ns)
	return u, k8s.Create(context.Background(), u, client.FieldValidation("Strict"))
}

func manifest(name, spec string) string {
	return fmt.Sprintf("apiVersion: rag.ragstack.dev/v1alpha1\nkind: RagAppliance\nmetadata:\n  name: %s\nspec:\n%s", name, indent(spec, "  "))
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// threeModels are the default variants, spelled out so a case can change one of them.
const threeModels = `models:
- {name: qwen3-rag, from: "qwen3:8b", role: chat, parameters: {numCtx: 8192}}
- {name: nomic-embed-rag, from: nomic-embed-text, role: embedding, parameters: {numCtx: 2048}}
- {name: deepseek-r1-rag, from: "deepseek-r1:14b", role: reasoning, parameters: {numCtx: 16384}}
`

// TestInvalidManifestsAreRefused: each manifest is refused at admission with a message that
// names the offending field, and nothing is stored.
func TestInvalidManifestsAreRefused(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	cases := []struct {
		name, spec, wantField string
	}{
		{"numParallel zero", "ollama: {numParallel: 0}", "spec.ollama.numParallel"},
		{"unknown kv cache type", "ollama: {kvCacheType: q5_0}", "spec.ollama.kvCacheType"},
		{"q8_0 without flash attention", "ollama: {flashAttention: false}", "spec.ollama.kvCacheType"},
		{"keepAlive not a duration", "ollama: {keepAlive: forever}", "spec.ollama.keepAlive"},
		{"loadTimeout negative", "ollama: {loadTimeout: -5m}", "spec.ollama.loadTimeout"},
		{"gpuOverhead not a quantity", "ollama: {gpuOverhead: lots}", "spec.ollama.gpuOverhead"},
		{"env overrides a rendered setting", "ollama: {env: [{name: OLLAMA_NUM_PARALLEL, value: '1'}]}", "spec.ollama.env"},
		{"variant without numCtx", "models: [{name: a, from: b, role: chat, parameters: {}}]", "spec.models[0].parameters.numCtx"},
		{"parameter Ollama does not accept", strings.Replace(threeModels, "numCtx: 8192}", "numCtx: 8192, numCtxx: 1}", 1), "spec.models[0].parameters.numCtxx"},
		{"unknown role", strings.Replace(threeModels, "role: chat", "role: vision", 1), "spec.models[0].role"},
		{"duplicate variant", threeModels + "- {name: qwen3-rag, from: x, role: chat, parameters: {numCtx: 512}}\n", "spec.models[3]"},
		{"variant name with a space", strings.Replace(threeModels, "name: qwen3-rag", "name: 'qwen3 rag'", 1), "spec.models[0].name"},
		{"temperature out of range", strings.Replace(threeModels, "numCtx: 8192}", "numCtx: 8192, temperature: 5}", 1), "spec.models[0].parameters.temperature"},
		{"chat model not declared", "ragServer: {models: {chat: llama3-rag}}", "spec.ragServer.models.chat"},
		{"embedding model is a chat model", "ragServer: {models: {embedding: qwen3-rag}}", "spec.ragServer.models.embedding"},
		{"tagging model not declared", "ragServer: {models: {tagging: nope}}", "spec.ragServer.models.tagging"},
		{"token budget exceeds numCtx", "ragServer: {tokens: {response: 2048}}", "spec.ragServer.tokens"},
		{"warming takes every slot", "ragServer: {concurrency: {warmingMaxConcurrentQueries: 4}}", "spec.ragServer.concurrency.warmingMaxConcurrentQueries"},
		{"overlap not below size", "ragServer: {chunking: {size: 200, overlap: 200}}", "spec.ragServer.chunking.overlap"},
		{"ragTimeout without unit", "ragServer: {concurrency: {ragTimeout: '60'}}", "spec.ragServer.concurrency.ragTimeout"},
		{"two replicas of a single-writer store", "ragServer: {replicas: 2}", "spec.ragServer.replicas"},
		{"file type not allowed", "ragServer: {uploads: {allowedTypes: [exe]}}", "spec.ragServer.uploads.allowedTypes[0]"},
		{"score threshold above 1", "ragServer: {retrieval: {scoreThreshold: 2}}", "spec.ragServer.retrieval.scoreThreshold"},
		{"unknown distance", "qdrant: {collection: {distance: Hamming}}", "spec.qdrant.collection.distance"},
		{"vector size zero", "qdrant: {collection: {vectorSize: 0}}", "spec.qdrant.collection.vectorSize"},
		{"product quantization", "qdrant: {collection: {quantization: {type: product}}}", "spec.qdrant.collection.quantization.type"},
		{"hnswEf zero", "qdrant: {search: {hnswEf: 0}}", "spec.qdrant.search.hnswEf"},
		{"OMP schedule unknown", "runtime: {ompSchedule: fast}", "spec.runtime.ompSchedule"},
		{"unknown section", "vllm: {enabled: true}", "spec.vllm"},
		// Values the system would refuse later (a crash-looping RAG server, a negative env):
		{"ragTimeout zero", "ragServer: {concurrency: {ragTimeout: 0s}}", "spec.ragServer.concurrency.ragTimeout"},
		{"ragTimeout below a nanosecond", "ragServer: {concurrency: {ragTimeout: 0.0001ns}}", "spec.ragServer.concurrency.ragTimeout"},
		{"loadTimeout zero", "ollama: {loadTimeout: 0s}", "spec.ollama.loadTimeout"},
		{"maxFileSize negative", "ragServer: {uploads: {maxFileSize: -1Gi}}", "spec.ragServer.uploads.maxFileSize"},
		{"maxFileSize zero", "ragServer: {uploads: {maxFileSize: '0'}}", "spec.ragServer.uploads.maxFileSize"},
		{"gpuOverhead negative", "ollama: {gpuOverhead: -1Gi}", "spec.ollama.gpuOverhead"},
		{"storage size zero", "qdrant: {storage: {size: '0'}}", "spec.qdrant.storage.size"},
		{"memory total negative", "memoryBudget: {total: -128Gi}", "spec.memoryBudget.total"},
		{"variant names differ only in case", threeModels + "- {name: Qwen3-RAG, from: x, role: chat, parameters: {numCtx: 512}}\n", "spec.models"},
		{"variant name and its :latest", threeModels + "- {name: 'qwen3-rag:latest', from: x, role: chat, parameters: {numCtx: 512}}\n", "spec.models"},
		{"model size negative", strings.Replace(threeModels, "role: chat,", "role: chat, size: -5Gi,", 1), "spec.models[0].size"},
		// Scale-out: what would run but lose data or starve.
		{"postgres without its Secret", "ragServer: {database: {type: postgres}}", "spec.ragServer.database.uriSecretRef"},
		{"unknown database", "ragServer: {database: {type: mysql}}", "spec.ragServer.database.type"},
		{"replicas share too few background slots", "ragServer: {replicas: 3, database: {type: postgres, uriSecretRef: {name: db, key: uri}}, concurrency: {warmingMaxConcurrentQueries: 2}}", "spec.ragServer.concurrency.warmingMaxConcurrentQueries"},
		{"more shard copies than Qdrant peers", "qdrant: {replicas: 2, collection: {replicationFactor: 3}}", "spec.qdrant.collection.replicationFactor"},
		{"a write waits for more copies than exist", "qdrant: {replicas: 3, collection: {replicationFactor: 2, writeConsistencyFactor: 3}}", "spec.qdrant.collection.writeConsistencyFactor"},
		{"shard number zero", "qdrant: {collection: {shardNumber: 0}}", "spec.qdrant.collection.shardNumber"},
		{"slo window too short", "slo: {window: 10s}", "spec.slo.window"},
		{"slo target zero", "slo: {chatTTFTP95: 0s}", "spec.slo.chatTTFTP95"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("invalid-%d", i)
			_, err := createManifest(ns, manifest(name, tc.spec))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.spec)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Fatalf("refused, but the message does not name %s:\n%v", tc.wantField, err)
			}
			u := &unstructured.Unstructured{}
			u.SetAPIVersion("rag.ragstack.dev/v1alpha1")
			u.SetKind("RagAppliance")
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err == nil {
				t.Fatal("refused manifest was stored")
			}
		})
	}
	if len(cases) < 20 {
		t.Fatalf("the matrix must hold at least 20 cases, has %d", len(cases))
	}
}

// TestImmutableCollectionFields: vector size and distance are fixed at creation.
func TestImmutableCollectionFields(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	u, err := createManifest(ns, manifest("immutable", "qdrant: {collection: {vectorSize: 768}}"))
	if err != nil {
		t.Fatal(err)
	}
	for field, value := range map[string]any{"vectorSize": int64(1024), "distance": "Dot", "name": "other"} {
		patch := fmt.Sprintf(`{"spec":{"qdrant":{"collection":{%q:%s}}}}`, field, jsonValue(value))
		err := k8s.Patch(context.Background(), u.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(patch)))
		if err == nil || !strings.Contains(err.Error(), "spec.qdrant.collection."+field) || !strings.Contains(err.Error(), "immutable") {
			t.Errorf("changing %s: want refusal naming the field as immutable, got %v", field, err)
		}
	}
}

// TestScaleOutTransitionsRefused: the database cannot be swapped under stored documents, and
// Qdrant cannot lose peers that hold shards.
func TestScaleOutTransitionsRefused(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	u, err := createManifest(ns, manifest("transitions", "qdrant: {replicas: 3}"))
	if err != nil {
		t.Fatal(err)
	}
	for patch, want := range map[string]string{
		`{"spec":{"ragServer":{"database":{"type":"postgres","uriSecretRef":{"name":"db","key":"uri"}}}}}`: "spec.ragServer.database.type",
		`{"spec":{"qdrant":{"replicas":2}}}`: "spec.qdrant.replicas",
	} {
		err := k8s.Patch(context.Background(), u.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(patch)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want refusal naming %s, got %v", patch, want, err)
		}
	}
	// Growing Qdrant is allowed.
	if err := k8s.Patch(context.Background(), u.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"qdrant":{"replicas":5}}}`))); err != nil {
		t.Errorf("growing Qdrant refused: %v", err)
	}
}

// TestFullSampleAccepted: the DGX Spark sample, every section present, passes admission.
func TestFullSampleAcceptedAndDefaultsApplied(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	u, err := createManifest(ns, manifest("defaults", "{}"))
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedInt64(u.Object, "spec", "ollama", "numParallel")
	models, _, _ := unstructured.NestedSlice(u.Object, "spec", "models")
	ctxTokens, _, _ := unstructured.NestedInt64(u.Object, "spec", "ragServer", "tokens", "context")
	if got != 4 || len(models) != 3 || ctxTokens != 6000 {
		t.Fatalf("defaults not applied: numParallel=%d models=%d context=%d", got, len(models), ctxTokens)
	}
	for _, file := range []string{"rag_v1alpha1_ragappliance_dgx_spark.yaml", "rag_v1alpha1_ragappliance_minimal.yaml", "rag_v1alpha1_ragappliance_scale_out.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "config", "samples", file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := createManifest(ns, string(data)); err != nil {
			t.Errorf("%s refused: %v", file, err)
		}
	}
}

func jsonValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// TestNamesThatCannotFitAreRefused: an appliance name its children cannot carry (too long for
// <name>-qdrant-headless and the StatefulSet's revision label, a dot, a leading digit) is
// refused naming metadata.name; the longest allowed name is accepted.
func TestNamesThatCannotFitAreRefused(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	longest := "a" + strings.Repeat("b", ragv1.MaxNameLength-1)
	for _, name := range []string{longest + "c", "spark.lab", "1spark", strings.Repeat("x", 253)} {
		_, err := createManifest(ns, manifest(name, "{}"))
		if err == nil || !strings.Contains(err.Error(), "metadata.name") {
			t.Errorf("name %q: want a refusal naming metadata.name, got %v", name, err)
		}
	}
	if _, err := createManifest(ns, manifest(longest, "{}")); err != nil {
		t.Errorf("a %d-character name is refused: %v", len(longest), err)
	}
}

// TestStorageCanGrowNotShrink: a claim may grow; shrinking or changing its class is refused
// naming the field, and the stored object is unchanged.
func TestStorageCanGrowNotShrink(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	u, err := createManifest(ns, manifest("storage", "qdrant: {storage: {size: 50Gi, storageClassName: fast}}\nollama: {storage: {size: 200Gi}}"))
	if err != nil {
		t.Fatal(err)
	}
	patch := func(p string) error {
		return k8s.Patch(context.Background(), u.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(p)))
	}
	for p, field := range map[string]string{
		`{"spec":{"qdrant":{"storage":{"size":"10Gi"}}}}`:             "spec.qdrant.storage.size",
		`{"spec":{"ollama":{"storage":{"size":"100Gi"}}}}`:            "spec.ollama.storage.size",
		`{"spec":{"qdrant":{"storage":{"storageClassName":"slow"}}}}`: "spec.qdrant.storage.storageClassName",
		`{"spec":{"qdrant":{"storage":{"storageClassName":null}}}}`:   "spec.qdrant.storage.storageClassName",
	} {
		if err := patch(p); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: want a refusal naming %s, got %v", p, field, err)
		}
	}
	if err := patch(`{"spec":{"qdrant":{"storage":{"size":"80Gi"}},"ollama":{"storage":{"size":"250Gi"}}}}`); err != nil {
		t.Errorf("growing the claims is refused: %v", err)
	}
}

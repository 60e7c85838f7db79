package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/envconfig"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// specGen draws values across each field's whole range and past its edges (zero, negative,
// tiny fractions, huge), so admission has something to refuse.
type specGen struct{ r *rand.Rand }

func (g specGen) pick(vals ...string) string { return vals[g.r.IntN(len(vals))] }

func (g specGen) duration(signed bool) string {
	units := []string{"ns", "us", "ms", "s", "m", "h"}
	n := []string{"1", "5", "0.5", "90", "1000", "9999"}[g.r.IntN(6)]
	if g.r.IntN(16) == 0 {
		n = g.pick("0", "0.0001")
	}
	d := n + units[g.r.IntN(len(units))]
	if g.r.IntN(5) == 0 {
		d += "30s"
	}
	if signed && g.r.IntN(4) == 0 {
		d = "-" + d
	}
	return d
}

func (g specGen) quantity() string {
	if g.r.IntN(10) == 0 {
		return g.pick("0", "1", "-1Gi", "100m", "1023", "0.5")
	}
	return g.pick("512Mi", "1.5Gi", "1Ki", "2e3", "100Mi", "64Gi", "1Ti")
}

func (g specGen) intIn(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

// num is mostly inside [lo, hi], and now and then one of the values past its edges.
func (g specGen) num(lo, hi int, past ...int) int {
	if len(past) > 0 && g.r.IntN(40) == 0 {
		return past[g.r.IntN(len(past))]
	}
	return g.intIn(lo, hi)
}

// manifest is a random spec in YAML.
func (g specGen) manifest(name string) string {
	numParallel := g.num(1, 8, 0, 65)
	numCtx := g.pick("8192", "16384", "32768", "8192", "2048")
	var b strings.Builder
	fmt.Fprintf(&b, "ollama:\n  numParallel: %d\n  keepAlive: %q\n  loadTimeout: %q\n  gpuOverhead: %q\n  multiuserCache: %v\n  maxLoadedModels: %d\n  kvCacheType: %s\n",
		numParallel, g.duration(true), g.duration(false), g.quantity(), g.r.IntN(2) == 0, g.num(0, 4, 33), g.pick("f16", "q8_0", "q4_0"))
	if g.r.IntN(2) == 0 {
		fmt.Fprintf(&b, "  maxQueue: %d\n", g.num(1, 4096, 0, 70000))
	}
	fmt.Fprintf(&b, "models:\n- {name: chat-rag, from: \"qwen3:8b\", role: chat, parameters: {numCtx: %s}}\n- {name: embed-rag, from: nomic-embed-text, role: embedding, parameters: {numCtx: 2048}}\n", numCtx)
	fmt.Fprintf(&b, "ragServer:\n  models: {chat: chat-rag, embedding: embed-rag, summary: chat-rag, tagging: chat-rag}\n")
	fmt.Fprintf(&b, "  concurrency: {embedConcurrency: %d, embedBatchSize: %d, maxConcurrentProcessing: %d, jobWorkers: %d, ragTimeout: %q, warmingMaxConcurrentQueries: %d, maxQueuedDocuments: %d}\n",
		g.num(1, 16, 0, 17), g.num(1, 512, 0), g.num(1, 64, 0), g.num(1, 64, 65), g.duration(false), g.intIn(0, max(numParallel-1, 0)), g.num(1, 20000, 0))
	fmt.Fprintf(&b, "  tokens: {context: %d, history: %d, system: %d, response: %d}\n", g.intIn(0, 3000), g.intIn(0, 1000), g.intIn(0, 500), g.num(16, 400, 0))
	size := g.intIn(16, 400)
	fmt.Fprintf(&b, "  chunking: {size: %d, overlap: %d}\n", size, g.num(0, size-1, size))
	fmt.Fprintf(&b, "  retrieval: {topK: %d, scoreThreshold: %s, maxChunksPerDocument: %d}\n", g.num(1, 100, 0), g.pick("-1", "0", "0.3", "1", "0.75"), g.num(1, 100, 101))
	fmt.Fprintf(&b, "  uploads: {maxFileSize: %q, maxFilesPerRequest: %d}\n", g.quantity(), g.num(1, 10000, 0))
	fmt.Fprintf(&b, "qdrant:\n  collection: {vectorSize: %d, hnsw: {m: %d, efConstruct: %d}}\n  search: {hnswEf: %d}\n  storage: {size: %q}\n",
		g.num(1, 4096, 0), g.num(0, 128), g.num(4, 4096, 3), g.num(1, 4096, 0), g.quantity())
	return manifestYAML(name, b.String())
}

func manifestYAML(name, spec string) string { return manifest(name, spec) }

// TestAdmittedSpecsRun is the property "whatever admission accepts, the system runs": many
// random specs are sent to the real kube-apiserver with the CRD (dry run); every one it
// accepts is rendered, and the RAG server's own config validation and Ollama's env parsing
// (envconfig of the Ollama module the tests run) must accept what was rendered.
func TestAdmittedSpecsRun(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t)
	g := specGen{rand.New(rand.NewPCG(20261129, 10))}
	const n = 300
	accepted, refused := 0, 0
	for i := range n {
		text := g.manifest(fmt.Sprintf("prop-%d", i))
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(text), &u.Object); err != nil {
			t.Fatal(err)
		}
		u.SetNamespace(ns)
		if err := k8s.Create(context.Background(), u, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			refused++
			if testing.Verbose() && refused <= 5 {
				t.Logf("refused: %v", err)
			}
			continue
		}
		accepted++
		ra := &ragv1.RagAppliance{}
		raw, _ := json.Marshal(u.Object)
		if err := json.Unmarshal(raw, ra); err != nil {
			t.Fatalf("admitted object does not convert: %v\n%s", err, text)
		}
		checkRendersValid(t, ra, text)
	}
	t.Logf("%d random specs: %d admitted (each rendered and accepted by the server's validation and Ollama's parsing), %d refused", n, accepted, refused)
	if accepted < n/10 || refused < n/10 {
		t.Fatalf("the generator must exercise both sides: %d admitted, %d refused", accepted, refused)
	}
}

func checkRendersValid(t *testing.T, ra *ragv1.RagAppliance, text string) {
	t.Helper()
	if _, err := serverconfig.Parse(ragServerConfig(ra).Marshal()); err != nil {
		t.Errorf("admitted, but the RAG server refuses its config (it would crash-loop): %v\n%s", err, text)
	}
	env, _ := ollamaEnv(ra)
	vars := map[string]string{}
	for _, e := range env {
		vars[e.Name] = e.Value
		t.Setenv(e.Name, e.Value)
	}
	fail := func(name, got string) {
		t.Errorf("admitted, but Ollama reads %s=%q as %s\n%s", name, vars[name], got, text)
	}
	if v, ok := vars["OLLAMA_NUM_PARALLEL"]; !ok || strconv.Itoa(int(envconfig.NumParallel())) != v || v == "0" {
		fail("OLLAMA_NUM_PARALLEL", strconv.Itoa(int(envconfig.NumParallel())))
	}
	if v, ok := vars["OLLAMA_MAX_QUEUE"]; ok && (strconv.Itoa(int(envconfig.MaxQueue())) != v || v == "0") {
		fail("OLLAMA_MAX_QUEUE", strconv.Itoa(int(envconfig.MaxQueue())))
	}
	if v, ok := vars["OLLAMA_GPU_OVERHEAD"]; ok {
		want := ra.Spec.Ollama.GPUOverhead.Value()
		if got := envconfig.GpuOverhead(); want < 0 || got != uint64(want) || v != strconv.FormatInt(want, 10) {
			fail("OLLAMA_GPU_OVERHEAD", strconv.FormatUint(got, 10))
		}
	}
	if d, err := time.ParseDuration(vars["OLLAMA_LOAD_TIMEOUT"]); err != nil || d <= 0 || envconfig.LoadTimeout() != d {
		fail("OLLAMA_LOAD_TIMEOUT", envconfig.LoadTimeout().String()+" (zero or unparsable means no stall detection at all)")
	}
	if _, err := time.ParseDuration(vars["OLLAMA_KEEP_ALIVE"]); err != nil {
		fail("OLLAMA_KEEP_ALIVE", envconfig.KeepAlive().String()+" (unparsable: Ollama's 5m default)")
	}
	if got := envconfig.KvCacheType(); got != string(ra.Spec.Ollama.KVCacheType) {
		fail("OLLAMA_KV_CACHE_TYPE", got)
	}
	if got := envconfig.FlashAttention(false); got != ra.Spec.Ollama.FlashAttention {
		fail("OLLAMA_FLASH_ATTENTION", strconv.FormatBool(got))
	}
	if q := ra.Spec.RagServer.Uploads.MaxFileSize; q != nil && q.Cmp(resource.MustParse("1Ki")) < 0 {
		t.Errorf("admitted maxFileSize %s", q)
	}
}

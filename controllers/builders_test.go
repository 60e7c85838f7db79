package controllers

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/serverconfig"
)

var update = flag.Bool("update", false, "rewrite golden files")

// loadSample reads a sample manifest strictly, as a fully specified (already defaulted) object.
func loadSample(t testing.TB, file string) *ragv1.RagAppliance {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	ra := &ragv1.RagAppliance{}
	if err := yaml.UnmarshalStrict(data, ra); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	ra.Namespace = "rag"
	ra.UID = types.UID("00000000-0000-0000-0000-000000000001")
	return ra
}

// guideOverride is the systemd override of guide §1, value by value.
var guideOverride = map[string]string{
	"OLLAMA_NUM_PARALLEL":      "4",
	"OLLAMA_MAX_LOADED_MODELS": "3",
	"OLLAMA_FLASH_ATTENTION":   "1",
	"OLLAMA_KV_CACHE_TYPE":     "q8_0",
	"OLLAMA_MULTIUSER_CACHE":   "true",
	"OLLAMA_KEEP_ALIVE":        "24h",
	"OLLAMA_GPU_OVERHEAD":      "536870912",
	"OLLAMA_LOAD_TIMEOUT":      "10m",
}

func envMap(env []corev1.EnvVar) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		m[e.Name] = e.Value
	}
	return m
}

func TestSampleOllamaEnvEqualsGuideOverride(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	env := envMap(ollamaDeployment(ra).Spec.Template.Spec.Containers[0].Env)

	want := guideOverride
	// Cross-check the table above against the guide itself when it is beside the checkout.
	if guide, err := os.ReadFile("../../shared/seed/dgx-spark-performance-guide.md"); err == nil {
		fromGuide := map[string]string{}
		for _, m := range regexp.MustCompile(`Environment="(OLLAMA_[A-Z_]+)=([^"]*)"`).FindAllStringSubmatch(string(guide), -1) {
			fromGuide[m[1]] = m[2]
		}
		if len(fromGuide) != len(want) {
			t.Fatalf("guide override has %d variables, table %d: %v", len(fromGuide), len(want), fromGuide)
		}
		want = fromGuide
	}
	for name, value := range want {
		if name == "OLLAMA_MULTIUSER_CACHE" {
			// Corrected by facts.md: true aborts Ollama < 0.30's runner under parallel requests,
			// and 0.30 removed it; the sample (and the default) is false, so it is not rendered.
			if got, ok := env[name]; ok {
				t.Errorf("%s = %q rendered; want it absent (default false)", name, got)
			}
			continue
		}
		if got, ok := env[name]; !ok || got != value {
			t.Errorf("%s = %q (present %v), guide says %q", name, got, ok, value)
		}
	}
	// Nothing else named OLLAMA_* except where the server listens and keeps its models.
	for name := range env {
		if strings.HasPrefix(name, "OLLAMA_") && want[name] == "" && name != "OLLAMA_HOST" && name != "OLLAMA_MODELS" {
			t.Errorf("unexpected %s=%s", name, env[name])
		}
	}
}

func TestOllamaEnvIsSortedAndUserEnvLast(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	ra.Spec.Ollama.Env = []corev1.EnvVar{{Name: "ZZ_FIRST", Value: "1"}, {Name: "AA_SECOND", Value: "2"}}
	env, _ := ollamaEnv(ra)
	n := len(env)
	if env[n-2].Name != "ZZ_FIRST" || env[n-1].Name != "AA_SECOND" {
		t.Fatalf("user env must follow in declared order, got %v", env[n-2:])
	}
	for i := 1; i < n-2; i++ {
		if env[i-1].Name >= env[i].Name {
			t.Fatalf("rendered env not sorted at %d: %s >= %s", i, env[i-1].Name, env[i].Name)
		}
	}
}

func TestOllamaSettingsFollowVersion(t *testing.T) {
	tests := []struct {
		image       string
		wantIgnored []string
	}{
		{"docker.io/ollama/ollama:0.24.0", nil},
		{"docker.io/ollama/ollama:0.29.9", nil},
		{"docker.io/ollama/ollama:0.30.0", []string{"OLLAMA_MULTIUSER_CACHE"}},
		{"registry.local:5000/ollama/ollama:v0.33.1-rocm", []string{"OLLAMA_MULTIUSER_CACHE"}},
		{"docker.io/ollama/ollama:latest", nil}, // unknown version: rendered as declared
		{"docker.io/ollama/ollama@sha256:0123", nil},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
			ra.Spec.Ollama.Image = tt.image
			ra.Spec.Ollama.MultiuserCache = true
			env, ignored := ollamaEnv(ra)
			if strings.Join(ignored, ",") != strings.Join(tt.wantIgnored, ",") {
				t.Fatalf("ignored = %v, want %v", ignored, tt.wantIgnored)
			}
			_, rendered := envMap(env)["OLLAMA_MULTIUSER_CACHE"]
			if rendered == (len(tt.wantIgnored) > 0) {
				t.Fatalf("OLLAMA_MULTIUSER_CACHE rendered=%v with ignored=%v: dead env or missing setting", rendered, ignored)
			}
		})
	}
}

func TestRuntimeSettingsGoWhereTheyHaveEffect(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	ollama := envMap(ollamaDeployment(ra).Spec.Template.Spec.Containers[0].Env)
	rag := envMap(ragServerDeployment(ra).Spec.Template.Spec.Containers[0].Env)
	for name, want := range map[string]string{"CUDA_VISIBLE_DEVICES": "0", "MALLOC_ARENA_MAX": "4"} {
		if ollama[name] != want {
			t.Errorf("ollama %s = %q, want %q", name, ollama[name], want)
		}
		if _, ok := rag[name]; ok {
			t.Errorf("rag-server must not get %s (no effect in a static Go binary without CUDA)", name)
		}
	}
	for name, want := range map[string]string{"OMP_NUM_THREADS": "10", "OMP_SCHEDULE": "guided", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"} {
		if rag[name] != want {
			t.Errorf("rag-server %s = %q, want %q", name, rag[name], want)
		}
		if _, ok := ollama[name]; ok {
			t.Errorf("ollama must not get %s (GGML is built without OpenMP; no PyTorch)", name)
		}
	}
	ra.Spec.Ollama.GPUs = 0
	if _, ok := envMap(ollamaDeployment(ra).Spec.Template.Spec.Containers[0].Env)["CUDA_VISIBLE_DEVICES"]; ok {
		t.Error("CUDA_VISIBLE_DEVICES rendered for a CPU-only Ollama")
	}
	if _, ok := ollamaDeployment(ra).Spec.Template.Spec.Containers[0].Resources.Limits[gpuResource]; ok {
		t.Error("GPU requested with gpus: 0")
	}
}

func TestOllamaDeploymentShape(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	d := ollamaDeployment(ra)
	if d.Spec.Strategy.Type != "Recreate" {
		t.Errorf("strategy %s: one GPU and a RWO model store need Recreate", d.Spec.Strategy.Type)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if got := c.Resources.Limits[gpuResource]; got.Value() != 1 {
		t.Errorf("nvidia.com/gpu limit = %v, want 1", got.String())
	}
	if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.StartupProbe == nil {
		t.Error("probes missing")
	}
	if d.Spec.Template.Spec.NodeSelector["kubernetes.io/arch"] != "arm64" || len(d.Spec.Template.Spec.Tolerations) != 1 {
		t.Error("scheduling passthrough lost")
	}
}

func TestEveryContainerIsRestricted(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	pods := map[string]corev1.PodSpec{
		"ollama":     ollamaDeployment(ra).Spec.Template.Spec,
		"qdrant":     qdrantStatefulSet(ra).Spec.Template.Spec,
		"rag-server": ragServerDeployment(ra).Spec.Template.Spec,
	}
	for name, p := range pods {
		if p.SecurityContext == nil || p.SecurityContext.RunAsNonRoot == nil || !*p.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: pod not runAsNonRoot", name)
		}
		for _, c := range p.Containers {
			sc := c.SecurityContext
			if sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 {
				t.Errorf("%s/%s: not restricted: %+v", name, c.Name, sc)
			}
		}
	}
}

func TestRagServerConfigIsValidAndComplete(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	cm := ragServerConfigMap(ra)
	cfg, err := serverconfig.Parse([]byte(cm.Data[ragConfigKey]))
	if err != nil {
		t.Fatalf("rendered config refused by the server's own parser: %v", err)
	}
	checks := map[string][2]any{
		"chat model":          {cfg.Models.Chat, "qwen3-rag"},
		"embedding model":     {cfg.Models.Embedding, "nomic-embed-rag"},
		"tagging model":       {cfg.Models.Tagging, "deepseek-r1-rag"},
		"maxConcurrentProc":   {cfg.Limits.MaxConcurrentProcessing, 3},
		"warming":             {cfg.Limits.WarmingMaxConcurrentQueries, 3},
		"ragTimeout":          {cfg.Limits.RagTimeout, "60s"},
		"context tokens":      {cfg.Tokens.Context, 6000},
		"numCtx":              {cfg.Tokens.NumCtx, 8192},
		"chunk size":          {cfg.Chunk.Size, 200},
		"overlap":             {cfg.Chunk.Overlap, 40},
		"hnswEf":              {cfg.Search.HNSWEf, 128},
		"score threshold":     {cfg.Search.ScoreThreshold, 0.3},
		"max file":            {cfg.Uploads.MaxFileBytes, int64(100 << 20)},
		"collection":          {cfg.Qdrant.Collection.Name, "documents"},
		"vector size":         {cfg.Qdrant.Collection.VectorSize, 768},
		"ollama url":          {cfg.Ollama.URL, "http://spark-ollama.rag.svc:11434"},
		"qdrant grpc address": {cfg.Qdrant.Address, "spark-qdrant.rag.svc:6334"},
		"document titles":     {cfg.Search.DocumentTitles, false},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	ra.Spec.RagServer.Retrieval.DocumentTitles = true
	cfg, err = serverconfig.Parse([]byte(ragServerConfigMap(ra).Data[ragConfigKey]))
	if err != nil || !cfg.Search.DocumentTitles {
		t.Errorf("retrieval.documentTitles: true did not reach the server's config (err %v)", err)
	}
}

func TestConfigHashFollowsConfig(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	h1 := ragServerDeployment(ra).Spec.Template.Annotations[ConfigHashAnnotation]
	if h1 != ragServerDeployment(ra).Spec.Template.Annotations[ConfigHashAnnotation] {
		t.Fatal("hash not stable")
	}
	ra.Spec.Ollama.NumParallel = 8
	if ragServerDeployment(ra).Spec.Template.Annotations[ConfigHashAnnotation] != h1 {
		t.Error("rag-server rolls when only Ollama's slot count changed")
	}
	ra.Spec.RagServer.Concurrency.MaxConcurrentProcessing = 5
	if ragServerDeployment(ra).Spec.Template.Annotations[ConfigHashAnnotation] == h1 {
		t.Error("rag-server does not roll when a limit changed")
	}
}

// TestGoldenChildren renders every child of the DGX Spark sample; the same spec must render
// byte-identical children (run with -update to accept a change).
func TestGoldenChildren(t *testing.T) {
	for sample, golden := range map[string]string{
		"rag_v1alpha1_ragappliance_dgx_spark.yaml": "dgx-spark-children.golden.yaml",
		// Replicas on PostgreSQL (RollingUpdate, PodDisruptionBudget, spread, no data claim,
		// divided background limits) and Qdrant in distributed mode.
		"rag_v1alpha1_ragappliance_scale_out.yaml": "scale-out-children.golden.yaml",
	} {
		t.Run(golden, func(t *testing.T) { checkGoldenChildren(t, sample, golden) })
	}
}

func checkGoldenChildren(t *testing.T, sample, golden string) {
	render := func() []byte {
		ra := loadSample(t, sample)
		var buf bytes.Buffer
		for _, o := range desiredChildren(ra) {
			b, err := yaml.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			buf.WriteString("---\n")
			buf.Write(b)
		}
		return buf.Bytes()
	}
	got := render()
	if !bytes.Equal(got, render()) {
		t.Fatal("two renders of the same spec differ")
	}
	checkGolden(t, golden, got)
}

// checkGolden compares got with testdata/<file>, or rewrites the file under -update.
func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	golden := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./controllers -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rendered objects differ from %s; rerun with -update if intended", golden)
	}
}

// desiredChildren is every object the builders render for an appliance, in apply order.
func desiredChildren(ra *ragv1.RagAppliance) []client.Object {
	objs := []client.Object{ollamaPVC(ra), ollamaService(ra), ollamaDeployment(ra)}
	if ollamaPooled(ra) {
		objs = []client.Object{ollamaHeadlessService(ra), ollamaService(ra), ollamaStatefulSet(ra)}
	}
	objs = append(objs, qdrantHeadlessService(ra), qdrantService(ra), qdrantStatefulSet(ra))
	if pdb := qdrantPDB(ra); pdb != nil {
		objs = append(objs, pdb)
	}
	if pvc := ragServerPVC(ra); pvc != nil {
		objs = append(objs, pvc)
	}
	objs = append(objs, ragServerConfigMap(ra), ragServerService(ra), ragServerDeployment(ra))
	if pdb := ragServerPDB(ra); pdb != nil {
		objs = append(objs, pdb)
	}
	return objs
}

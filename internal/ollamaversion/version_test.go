package ollamaversion

import (
	"slices"
	"testing"
)

func TestHonoursTable(t *testing.T) {
	for _, tc := range []struct {
		version Version
		name    string
		want    bool
	}{
		{V0_24_0, "OLLAMA_MULTIUSER_CACHE", true},
		{V0_24_0, "OLLAMA_NEW_ENGINE", true},
		{V0_24_0, "OLLAMA_IGPU_ENABLE", false},
		{MultiuserCacheRemoved, "OLLAMA_MULTIUSER_CACHE", false},
		{V0_32_15, "OLLAMA_MULTIUSER_CACHE", false},
		{V0_32_15, "OLLAMA_NEW_ENGINE", false},
		{V0_32_15, "OLLAMA_IGPU_ENABLE", true},
		{V0_32_15, "OLLAMA_GO_TEMPLATE", true},
		{V0_32_15, "OLLAMA_NUM_PARALLEL", true},
		{V0_32_15, "CUDA_VISIBLE_DEVICES", true}, // not Ollama's: assumed honoured
	} {
		if got := Honours(tc.version, tc.name); got != tc.want {
			t.Errorf("Honours(%s, %s) = %v, want %v", tc.version, tc.name, got, tc.want)
		}
	}
}

// The variables of each checked release, as its envconfig/config.go names them.
func TestKnownMatchesEnvconfig(t *testing.T) {
	want032 := []string{"OLLAMA_AUTH", "OLLAMA_CONTEXT_LENGTH", "OLLAMA_DEBUG", "OLLAMA_DEBUG_LOG_REQUESTS", "OLLAMA_EDITOR",
		"OLLAMA_FLASH_ATTENTION", "OLLAMA_GO_TEMPLATE", "OLLAMA_GPU_OVERHEAD", "OLLAMA_HOST", "OLLAMA_IGPU_ENABLE",
		"OLLAMA_KEEP_ALIVE", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_LLM_LIBRARY", "OLLAMA_LOAD_TIMEOUT", "OLLAMA_MAX_LOADED_MODELS",
		"OLLAMA_MAX_QUEUE", "OLLAMA_MAX_TRANSFER_STREAMS", "OLLAMA_MODELS", "OLLAMA_NOHISTORY", "OLLAMA_NOPRUNE",
		"OLLAMA_NO_CLOUD", "OLLAMA_NUM_PARALLEL", "OLLAMA_ORIGINS", "OLLAMA_REMOTES", "OLLAMA_SCHED_SPREAD", "OLLAMA_VULKAN"}
	if got := Known(V0_32_15); !slices.Equal(got, want032) {
		t.Errorf("Known(0.32.15) = %v\nwant %v", got, want032)
	}
	got024 := Known(V0_24_0)
	for _, name := range []string{"OLLAMA_MULTIUSER_CACHE", "OLLAMA_NEW_ENGINE"} {
		if !slices.Contains(got024, name) {
			t.Errorf("Known(0.24.0) lacks %s", name)
		}
	}
}

func TestFromImage(t *testing.T) {
	for image, want := range map[string]string{
		"docker.io/ollama/ollama:0.32.15": "0.32.15",
		"ollama/ollama:0.30.0-rocm":       "0.30.0",
		"localhost:5000/ollama":           "",
		"ollama/ollama:latest":            "",
		"ollama/ollama@sha256:abc":        "",
	} {
		v, ok := FromImage(image)
		if (want == "") == ok || (ok && v.String() != want) {
			t.Errorf("FromImage(%q) = %v, %v; want %q", image, v, ok, want)
		}
	}
}

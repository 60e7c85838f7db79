package modelspec

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

func TestParametersUseOllamaNames(t *testing.T) {
	temp := ragv1.Number("0.7")
	got := Parameters(ragv1.ModelParameters{NumCtx: 8192, NumThread: ptr.To[int32](10), NumGPU: ptr.To[int32](999),
		Temperature: &temp, UseMmap: ptr.To(false), Stop: []string{"<|im_end|>"}})
	want := map[string]any{"num_ctx": 8192, "num_thread": 10, "num_gpu": 999, "temperature": 0.7, "use_mmap": false}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, got[k], got[k], v)
		}
	}
	if s, ok := got["stop"].([]string); !ok || s[0] != "<|im_end|>" {
		t.Errorf("stop = %v", got["stop"])
	}
	if len(got) != 6 {
		t.Errorf("unset parameters must not be sent: %v", got)
	}
}

func TestHashIsStableAndFollowsTheSpec(t *testing.T) {
	v := Variant{Name: "qwen3-rag", From: "qwen3:8b", Parameters: map[string]any{"num_ctx": 8192, "num_thread": 10}}
	if v.Hash() != v.Hash() || len(v.Hash()) != 10 {
		t.Fatal("unstable hash")
	}
	v2 := v
	v2.Parameters = map[string]any{"num_thread": 10, "num_ctx": 4096}
	if v.Hash() == v2.Hash() {
		t.Fatal("a changed numCtx must change the hash")
	}
}

func TestVerify(t *testing.T) {
	shown := ParseShown("num_ctx                        8192\nnum_thread                     10\nstop                           \"<|im_end|>\"\nstop                           \"<|im_start|>\"\ntemperature                    0.7")
	ok := map[string]any{"num_ctx": 8192, "num_thread": 10, "temperature": 0.7, "stop": []string{"<|im_start|>", "<|im_end|>"}}
	if err := Verify(ok, shown); err != nil {
		t.Fatal(err)
	}
	err := Verify(map[string]any{"num_ctx": 4096, "num_gpu": 999}, shown)
	if err == nil || !strings.Contains(err.Error(), "num_ctx = 8192, declared 4096") || !strings.Contains(err.Error(), "num_gpu not applied") {
		t.Fatalf("got %v", err)
	}
}

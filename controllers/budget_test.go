package controllers

import (
	"math"
	"testing"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// TestBudgetMatchesFactsWorkedTable checks the arithmetic against the worked table at the end of
// docs/facts.md (KV bytes per token = 2 × layers × KV heads × head dim × bytes per element).
func TestBudgetMatchesFactsWorkedTable(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	tests := []struct {
		variant          string
		wantPerToken     float64 // bytes
		wantSlots        int64
		wantKVBytes      int64
		wantTotalGB      float64 // weights + cache, decimal GB as in the table
		guideEstimatedGB float64
	}{
		{"qwen3-rag", 76.5 * 1024, 4, 2_566_914_048, 7.77, 7},        // facts: ≈ 2.4 GiB cache
		{"deepseek-r1-rag", 102 * 1024, 4, 6_845_104_128, 15.85, 12}, // facts: ≈ 6.4 GiB, 15.9 GB (guide: ~12, low)
		{"nomic-embed-rag", 36 * 1024, 1, 75_497_472, 0.35, 0.5},     // embedding: one slot, f16
	}
	var sum, guideSum float64
	for _, tt := range tests {
		t.Run(tt.variant, func(t *testing.T) {
			var m ragv1.ModelVariant
			for _, v := range ra.Spec.Models {
				if v.Name == tt.variant {
					m = v
				}
			}
			b := budgetForVariant(m, ra.Spec.Ollama, knownBases[m.From], "builtin-table")
			if b.kvPerToken != tt.wantPerToken || b.slots != tt.wantSlots || b.kvBytes() != tt.wantKVBytes {
				t.Fatalf("per token %.1f B, %d slots, cache %d B; want %.1f, %d, %d", b.kvPerToken, b.slots, b.kvBytes(), tt.wantPerToken, tt.wantSlots, tt.wantKVBytes)
			}
			total := float64(b.weights+b.kvBytes()) / 1e9
			if math.Abs(total-tt.wantTotalGB) > 0.01 {
				t.Fatalf("weights + cache = %.2f GB, want %.2f", total, tt.wantTotalGB)
			}
			sum += total
			guideSum += tt.guideEstimatedGB
		})
	}
	if sum-guideSum < 4 {
		t.Errorf("the guide's model rows (%.1f GB) should be shown optimistic by several GB; ours %.1f GB", guideSum, sum)
	}
}

func TestBudgetSlotAndCacheRules(t *testing.T) {
	o := ragv1.OllamaSpec{NumParallel: 4, KVCacheType: ragv1.KVCacheQ8_0, FlashAttention: true}
	arch := modelArch{arch: "qwen3", layers: 2, kvHeads: 2, keyLength: 32, valueLength: 32, weightsBytes: 1000}
	chat := ragv1.ModelVariant{Name: "c", Role: ragv1.RoleChat, Parameters: ragv1.ModelParameters{NumCtx: 1024}}
	if b := budgetForVariant(chat, o, arch, ""); b.slots != 4 || b.kvType != ragv1.KVCacheQ8_0 {
		t.Fatalf("chat: %+v", b)
	}
	o.FlashAttention = false
	if b := budgetForVariant(chat, o, arch, ""); b.kvType != ragv1.KVCacheF16 {
		t.Fatalf("without flash attention the cache is f16: %+v", b)
	}
	arch.arch = "qwen3vl"
	if b := budgetForVariant(chat, o, arch, ""); b.slots != 1 {
		t.Fatalf("qwen3vl is forced to one slot: %+v", b)
	}
}

func TestQdrantShareAndRendering(t *testing.T) {
	c := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml").Spec.Qdrant.Collection
	got, _ := qdrantBytes(100_000, c)
	want := int64(100_000*768*4 + 100_000*768 + 100_000*16*2*4)
	if got != want {
		t.Fatalf("qdrant bytes %d, want %d", got, want)
	}
	for in, out := range map[int64]string{512 << 20: "512Mi", 2_566_914_048: "2448Mi", 15_850_000_000: "14.8Gi", -(1 << 30): "-1Gi"} {
		if s := bytesQuantity(in); s != out {
			t.Errorf("bytesQuantity(%d) = %s, want %s", in, s, out)
		}
	}
}

package controllers

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/ollama/ollama/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/modelsync"
)

// modelArch is what the KV-cache arithmetic needs from a model.
type modelArch struct {
	arch         string
	layers       int64
	kvHeads      int64
	keyLength    int64 // per head
	valueLength  int64 // per head
	weightsBytes int64
}

// knownBases are the guide's three base models, from their published configs (facts.md), used
// while a base is not on the server yet and the spec declares no size.
var knownBases = map[string]modelArch{
	"qwen3:8b":         {arch: "qwen3", layers: 36, kvHeads: 8, keyLength: 128, valueLength: 128, weightsBytes: 5_200_000_000},
	"deepseek-r1:14b":  {arch: "qwen2", layers: 48, kvHeads: 8, keyLength: 128, valueLength: 128, weightsBytes: 9_000_000_000},
	"nomic-embed-text": {arch: "nomic-bert", layers: 12, kvHeads: 12, keyLength: 64, valueLength: 64, weightsBytes: 274_000_000},
}

// singleSlotArchitectures are forced to one slot by Ollama's scheduler whatever NUM_PARALLEL says
// (server/sched.go).
var singleSlotArchitectures = map[string]bool{"mllama": true, "qwen3vl": true, "qwen3next": true, "lfm2": true, "nemotron_h": true}

// kvBytesPerElement is the cache element size: f16 2 bytes; q8_0 34 bytes per block of 32;
// q4_0 18 per 32.
func kvBytesPerElement(t ragv1.KVCacheType) float64 {
	switch t {
	case ragv1.KVCacheQ8_0:
		return 34.0 / 32
	case ragv1.KVCacheQ4_0:
		return 18.0 / 32
	default:
		return 2
	}
}

// modelBudget is one variant's row: weights + KV(num_ctx × slots × kv type).
type modelBudget struct {
	name        string
	weights     int64
	kvPerToken  float64
	slots       int64
	numCtx      int64
	kvType      ragv1.KVCacheType
	arch        modelArch
	source      string
	unknownSize bool
}

func (b modelBudget) kvBytes() int64 {
	return int64(math.Round(b.kvPerToken * float64(b.numCtx) * float64(b.slots)))
}

// budgetForVariant applies Ollama's sizing: embedding models (and some architectures) get one
// slot; the cache is f16 for them and whenever flash attention is off.
func budgetForVariant(m ragv1.ModelVariant, o ragv1.OllamaSpec, arch modelArch, source string) modelBudget {
	slots := int64(o.NumParallel)
	kvType := o.KVCacheType
	if m.Role == ragv1.RoleEmbedding {
		slots, kvType = 1, ragv1.KVCacheF16
	}
	if singleSlotArchitectures[arch.arch] {
		slots = 1
	}
	if !o.FlashAttention {
		kvType = ragv1.KVCacheF16
	}
	perToken := float64(arch.layers*arch.kvHeads*(arch.keyLength+arch.valueLength)) * kvBytesPerElement(kvType)
	return modelBudget{name: m.Name, weights: arch.weightsBytes, kvPerToken: perToken, slots: slots,
		numCtx: int64(m.Parameters.NumCtx), kvType: kvType, arch: arch, source: source, unknownSize: arch.weightsBytes == 0 || arch.layers == 0}
}

// qdrantBytes: original float32 vectors (RAM unless onDisk) + int8 quantized copy + the HNSW
// graph (about 2·m links of 4 bytes per point at level 0).
func qdrantBytes(points int64, c ragv1.CollectionSpec) (int64, string) {
	dim := int64(c.VectorSize)
	var total int64
	var parts []string
	if !c.OnDisk {
		total += points * dim * 4
		parts = append(parts, fmt.Sprintf("%d × %d × 4 B float32", points, dim))
	}
	if c.Quantization.Type == ragv1.QuantizationScalar {
		total += points * dim
		parts = append(parts, fmt.Sprintf("%d × %d × 1 B int8", points, dim))
	}
	total += points * int64(c.HNSW.M) * 2 * 4
	parts = append(parts, fmt.Sprintf("HNSW %d × 2·%d × 4 B", points, c.HNSW.M))
	return total, strings.Join(parts, " + ")
}

// archFromShow reads the architecture numbers from /api/show model_info (GGUF keys).
func archFromShow(show *api.ShowResponse, sizeBytes int64) (modelArch, bool) {
	info := show.ModelInfo
	arch, _ := info["general.architecture"].(string)
	num := func(key string) int64 {
		switch v := info[arch+"."+key].(type) {
		case float64:
			return int64(v)
		case int64:
			return v
		case int:
			return int64(v)
		}
		return 0
	}
	a := modelArch{arch: arch, layers: num("block_count"), kvHeads: num("attention.head_count_kv"),
		keyLength: num("attention.key_length"), valueLength: num("attention.value_length"), weightsBytes: sizeBytes}
	if a.kvHeads == 0 {
		a.kvHeads = num("attention.head_count") // no GQA
	}
	if a.keyLength == 0 && a.kvHeads > 0 {
		if heads := num("attention.head_count"); heads > 0 {
			a.keyLength = num("embedding_length") / heads
		}
	}
	if a.valueLength == 0 {
		a.valueLength = a.keyLength
	}
	return a, arch != "" && a.layers > 0 && a.kvHeads > 0 && a.keyLength > 0
}

// reconcileBudget computes the memory budget (guide §6) from what Ollama reports (or declared
// and known sizes while a model is absent) and states whether it fits.
func (r *RagApplianceReconciler) reconcileBudget(ctx context.Context, s *scope, oc OllamaAPI) error {
	ra := s.ra
	var listed *api.ListResponse
	if oc != nil {
		listed, _ = oc.List(ctx)
	}
	var rows []ragv1.MemoryRow
	var used int64
	var incomplete []string
	for _, m := range ra.Spec.Models {
		arch, source := r.variantArch(ctx, oc, listed, m)
		b := budgetForVariant(m, ra.Spec.Ollama, arch, source)
		if b.unknownSize {
			incomplete = append(incomplete, m.Name)
		}
		total := b.weights + b.kvBytes()
		used += total
		rows = append(rows, ragv1.MemoryRow{
			Component: "model " + m.Name,
			Weights:   bytesQuantity(b.weights),
			KVCache:   bytesQuantity(b.kvBytes()),
			Total:     bytesQuantity(total),
			Detail: fmt.Sprintf("%d layers × %d KV heads × (%d+%d) × %s = %s/token × %d ctx × %d slots",
				arch.layers, arch.kvHeads, arch.keyLength, arch.valueLength, b.kvType, bytesQuantity(int64(math.Round(b.kvPerToken))), b.numCtx, b.slots),
			Source: source,
		})
	}
	points := ra.Spec.MemoryBudget.ExpectedPoints
	if c := ra.Status.Collection; c != nil && c.PointsCount > points {
		points = c.PointsCount
	}
	qBytes, qDetail := qdrantBytes(points, ra.Spec.Qdrant.Collection)
	used += qBytes
	rows = append(rows, ragv1.MemoryRow{Component: "qdrant " + ra.Spec.Qdrant.Collection.Name, Total: bytesQuantity(qBytes), Detail: qDetail, Source: "spec"})
	for _, o := range ra.Spec.MemoryBudget.Overheads {
		used += o.Size.Value()
		rows = append(rows, ragv1.MemoryRow{Component: o.Name, Total: bytesQuantity(o.Size.Value()), Source: "declared"})
	}
	if gpu := ra.Spec.Ollama.GPUOverhead; gpu != nil {
		used += gpu.Value()
		rows = append(rows, ragv1.MemoryRow{Component: "ollama gpuOverhead", Total: bytesQuantity(gpu.Value()), Source: "spec"})
	}

	total, totalSource, err := r.budgetTotal(ctx, ra)
	if err != nil {
		return err
	}
	mem := &ragv1.MemoryStatus{Total: bytesQuantity(total), TotalSource: totalSource, Used: bytesQuantity(used),
		Headroom: bytesQuantity(total - used), Fits: total > 0 && used <= total, Rows: rows}
	ra.Status.Memory = mem
	switch {
	case total == 0:
		setCondition(ra, ragv1.ConditionMemoryBudget, unknownState(ragv1.ReasonBudgetIncomplete, fmt.Sprintf("needs %s; no node matches the Ollama pod's selector and spec.memoryBudget.total is unset", mem.Used)))
	case !mem.Fits:
		setCondition(ra, ragv1.ConditionMemoryBudget, falseState(ragv1.ReasonDoesNotFit, fmt.Sprintf("needs %s of %s (%s): lower numCtx, numParallel or the KV cache type, or declare fewer models", mem.Used, mem.Total, totalSource)))
	case len(incomplete) > 0:
		setCondition(ra, ragv1.ConditionMemoryBudget, unknownState(ragv1.ReasonBudgetIncomplete, fmt.Sprintf("%s of %s counted, but the size of %s is unknown: declare spec.models[].size", mem.Used, mem.Total, strings.Join(incomplete, ", "))))
	default:
		setCondition(ra, ragv1.ConditionMemoryBudget, trueState(ragv1.ReasonFits, fmt.Sprintf("needs %s of %s (%s), headroom %s", mem.Used, mem.Total, totalSource, mem.Headroom)))
	}
	return nil
}

// variantArch prefers what Ollama reports for the variant, then the declared size with known
// architecture numbers for the base.
func (r *RagApplianceReconciler) variantArch(ctx context.Context, oc OllamaAPI, listed *api.ListResponse, m ragv1.ModelVariant) (modelArch, string) {
	if oc != nil && listed != nil {
		for _, name := range []string{m.Name, m.From} {
			var size int64
			for _, lm := range listed.Models {
				if modelsync.SameModel(lm.Name, name) {
					size = lm.Size
				}
			}
			if size == 0 {
				continue
			}
			if show, err := oc.Show(ctx, &api.ShowRequest{Model: name}); err == nil {
				if a, ok := archFromShow(show, size); ok {
					return a, "ollama-show"
				}
			}
		}
	}
	a := knownBases[m.From]
	source := "builtin-table"
	if m.Size != nil {
		a.weightsBytes = m.Size.Value()
		source = "declared"
	}
	if a.layers == 0 {
		source = "unknown"
	}
	return a, source
}

// budgetTotal is the declared total, else the largest allocatable memory among the nodes the
// Ollama pod may be scheduled on.
func (r *RagApplianceReconciler) budgetTotal(ctx context.Context, ra *ragv1.RagAppliance) (int64, string, error) {
	if t := ra.Spec.MemoryBudget.Total; t != nil {
		return t.Value(), "spec.memoryBudget.total", nil
	}
	nodes := &corev1.NodeList{}
	if err := r.List(ctx, nodes, client.MatchingLabels(placementFor(ra, componentOllama).NodeSelector)); err != nil {
		return 0, "", err
	}
	var best int64
	var name string
	for _, n := range nodes.Items {
		if q, ok := n.Status.Allocatable[corev1.ResourceMemory]; ok && q.Value() > best {
			best, name = q.Value(), n.Name
		}
	}
	if best == 0 {
		return 0, "no matching node", nil
	}
	return best, "allocatable memory of node " + name, nil
}

// bytesQuantity renders bytes as a binary quantity rounded to KiB, MiB (above 1 MiB) or tenths
// of GiB (above 10 GiB), so
// status does not change with every byte.
func bytesQuantity(b int64) string {
	neg := b < 0
	if neg {
		b = -b
	}
	var s string
	switch {
	case b >= 10<<30:
		s = fmt.Sprintf("%.1fGi", float64(b)/(1<<30))
	case b >= 1<<20:
		s = resource.NewQuantity((b+(1<<19))>>20<<20, resource.BinarySI).String()
	case b >= 1<<10:
		s = resource.NewQuantity((b+(1<<9))>>10<<10, resource.BinarySI).String()
	default:
		s = resource.NewQuantity(b, resource.BinarySI).String()
	}
	if neg {
		return "-" + s
	}
	return s
}

package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// Default requests keep every pod out of the BestEffort QoS class, which a node under memory
// pressure evicts first; on a DGX Spark the GPU's allocations come from the same 128 GB pool.
const (
	ollamaCPURequest    = "2"
	qdrantCPURequest    = "500m"
	ragServerCPURequest = "500m"
	// unknownModelBytes stands for a variant whose size is neither declared nor known.
	unknownModelBytes = 1 << 30
	// qdrantBaseBytes is Qdrant's own footprint besides vectors and index (runtime, WAL buffers).
	qdrantBaseBytes = 256 << 20
	// ragServerBaseBytes is the RAG server without the PDF engine: runtime, caches, buffers.
	ragServerBaseBytes = 256 << 20
	// pdfInstanceBytes is one PDFium (WebAssembly) instance's working memory.
	pdfInstanceBytes = 64 << 20
)

// withDefaults fills the cpu and memory requests (and memory limit) the user left unset.
func withDefaults(declared corev1.ResourceRequirements, cpu string, memRequest, memLimit int64) corev1.ResourceRequirements {
	out := *declared.DeepCopy()
	if out.Requests == nil {
		out.Requests = corev1.ResourceList{}
	}
	if _, ok := out.Requests[corev1.ResourceCPU]; !ok {
		if lim, ok := out.Limits[corev1.ResourceCPU]; ok {
			out.Requests[corev1.ResourceCPU] = lim // the API server would default it so
		} else {
			out.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
	}
	if _, ok := out.Requests[corev1.ResourceMemory]; !ok {
		if lim, ok := out.Limits[corev1.ResourceMemory]; ok {
			out.Requests[corev1.ResourceMemory] = lim
		} else {
			out.Requests[corev1.ResourceMemory] = mebibytes(memRequest)
		}
	}
	if memLimit > 0 {
		if out.Limits == nil {
			out.Limits = corev1.ResourceList{}
		}
		if _, ok := out.Limits[corev1.ResourceMemory]; !ok {
			req := out.Requests[corev1.ResourceMemory]
			if req.Value() < memLimit {
				out.Limits[corev1.ResourceMemory] = mebibytes(memLimit)
			} else {
				out.Limits[corev1.ResourceMemory] = req.DeepCopy()
			}
		}
	}
	return out
}

// mebibytes rounds up to a whole MiB, so the rendered quantity is short and stable.
func mebibytes(b int64) resource.Quantity {
	return *resource.NewQuantity((b+(1<<20)-1)>>20<<20, resource.BinarySI)
}

// ollamaMemoryRequest is what the declared variants need resident: weights plus KV cache for
// each, computed from the spec alone (declared sizes, else the known bases) so the pod template
// does not change as models are pulled.
func ollamaMemoryRequest(ra *ragv1.RagAppliance) int64 {
	var total int64
	for _, m := range ra.Spec.Models {
		a := knownBases[m.From]
		if m.Size != nil {
			a.weightsBytes = m.Size.Value()
		}
		b := budgetForVariant(m, ra.Spec.Ollama, a, "")
		if b.weights <= 0 {
			total += unknownModelBytes
		} else {
			total += b.weights
		}
		total += b.kvBytes()
	}
	if total < 1<<30 {
		total = 1 << 30
	}
	return total
}

// qdrantMemoryRequest is the collection's expected vectors, quantized copy and graph (the
// memory budget's Qdrant row) plus Qdrant's own base.
func qdrantMemoryRequest(ra *ragv1.RagAppliance) int64 {
	b, _ := qdrantBytes(ra.Spec.MemoryBudget.ExpectedPoints, ra.Spec.Qdrant.Collection)
	return qdrantBaseBytes + b
}

// ragServerMemory is the RAG server's request (its base plus one PDF engine instance per
// concurrently processed document and one for upload validation) and its limit (twice that:
// a large PDF may take more than the typical instance). GOMEMLIMIT is set below the limit.
func ragServerMemory(ra *ragv1.RagAppliance) (request, limit int64) {
	instances := int64(ra.Spec.RagServer.Concurrency.MaxConcurrentProcessing) + 1
	request = ragServerBaseBytes + instances*pdfInstanceBytes
	return request, 2 * request
}

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RagApplianceSpec declares one local RAG stack: Ollama with its server settings and model
// variants, Qdrant with a tuned collection, and the RAG server. Every field defaults to the
// value the DGX Spark performance guide recommends, corrected by upstream facts where the
// guide is wrong (see docs/crd-reference.md).
//
// +kubebuilder:validation:XValidation:rule="!has(self.ollama) || !has(self.ragServer) || !has(self.ragServer.concurrency) || self.ragServer.concurrency.warmingMaxConcurrentQueries < self.ollama.numParallel",message="spec.ragServer.concurrency.warmingMaxConcurrentQueries must be less than spec.ollama.numParallel: one Ollama slot is always kept for interactive chat",fieldPath=".ragServer.concurrency.warmingMaxConcurrentQueries"
// +kubebuilder:validation:XValidation:rule="!has(self.ragServer) || !has(self.ragServer.models) || !has(self.models) || self.models.exists(m, m.name == self.ragServer.models.chat && m.role != 'embedding')",message="spec.ragServer.models.chat must name a declared spec.models[] variant whose role is not embedding",fieldPath=".ragServer.models.chat"
// +kubebuilder:validation:XValidation:rule="!has(self.ragServer) || !has(self.ragServer.models) || !has(self.models) || self.models.exists(m, m.name == self.ragServer.models.embedding && m.role == 'embedding')",message="spec.ragServer.models.embedding must name a declared spec.models[] variant with role embedding",fieldPath=".ragServer.models.embedding"
// +kubebuilder:validation:XValidation:rule="!has(self.ragServer) || !has(self.ragServer.models) || !has(self.models) || self.models.exists(m, m.name == self.ragServer.models.summary && m.role != 'embedding')",message="spec.ragServer.models.summary must name a declared spec.models[] variant whose role is not embedding",fieldPath=".ragServer.models.summary"
// +kubebuilder:validation:XValidation:rule="!has(self.ragServer) || !has(self.ragServer.models) || !has(self.models) || self.models.exists(m, m.name == self.ragServer.models.tagging && m.role != 'embedding')",message="spec.ragServer.models.tagging must name a declared spec.models[] variant whose role is not embedding",fieldPath=".ragServer.models.tagging"
// +kubebuilder:validation:XValidation:rule="!has(self.ragServer) || !has(self.ragServer.models) || !has(self.models) || !has(self.ragServer.tokens) || self.models.filter(m, m.name == self.ragServer.models.chat).all(m, self.ragServer.tokens.context + self.ragServer.tokens.history + self.ragServer.tokens.system + self.ragServer.tokens.response <= m.parameters.numCtx)",message="spec.ragServer.tokens: context+history+system+response must fit the numCtx of the chat variant named by spec.ragServer.models.chat (spec.models[].parameters.numCtx)",fieldPath=".ragServer.tokens"
// +kubebuilder:validation:XValidation:rule="!has(self.ragServer) || !has(self.ragServer.replicas) || self.ragServer.replicas <= 1 || !has(self.ragServer.concurrency) || self.ragServer.concurrency.warmingMaxConcurrentQueries == 0 || self.ragServer.concurrency.warmingMaxConcurrentQueries >= self.ragServer.replicas",message="spec.ragServer.concurrency.warmingMaxConcurrentQueries is divided among the RAG server replicas: set it to 0 or at least spec.ragServer.replicas (and below spec.ollama.numParallel)",fieldPath=".ragServer.concurrency.warmingMaxConcurrentQueries"
type RagApplianceSpec struct {
	// ollama configures the Ollama server: image, server settings (the guide's systemd
	// override, §1), GPU, model store and scheduling.
	// +kubebuilder:default={}
	// +optional
	Ollama OllamaSpec `json:"ollama,omitempty"`

	// models are the model variants created on Ollama (guide §2): each is `ollama create
	// <name>` FROM a base model with PARAMETER lines. Defaults to the guide's three.
	// +kubebuilder:default={{name:"qwen3-rag",from:"qwen3:8b",role:"chat",parameters:{numCtx:8192,numThread:10,numGPU:999}},{name:"nomic-embed-rag",from:"nomic-embed-text",role:"embedding",parameters:{numCtx:2048,numThread:10}},{name:"deepseek-r1-rag",from:"deepseek-r1:14b",role:"reasoning",parameters:{numCtx:16384,numThread:10,numGPU:999}}}
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.filter(b, (b.name.endsWith(':latest') ? b.name.substring(0, b.name.size() - 7) : b.name).lowerAscii() == (a.name.endsWith(':latest') ? a.name.substring(0, a.name.size() - 7) : a.name).lowerAscii()).size() == 1)",message="spec.models[].name must be unique ignoring case and a ':latest' tag: Ollama stores names lower-cased, so qwen3-rag and Qwen3-RAG are one model"
	// +optional
	Models []ModelVariant `json:"models,omitempty"`

	// runtime holds the process-level tuning of guide §3, rendered into the pods where each
	// setting has an effect.
	// +kubebuilder:default={}
	// +optional
	Runtime RuntimeSpec `json:"runtime,omitempty"`

	// qdrant configures the vector database and its collection (guide §5).
	// +kubebuilder:default={}
	// +optional
	Qdrant QdrantSpec `json:"qdrant,omitempty"`

	// ragServer configures the RAG server: model roles, concurrency limits (guide §4), token
	// budget, chunking, uploads and auth.
	// +kubebuilder:default={}
	// +optional
	RagServer RagServerSpec `json:"ragServer,omitempty"`

	// memoryBudget declares what the memory budget (guide §6) cannot read from the running parts.
	// +kubebuilder:default={}
	// +optional
	MemoryBudget MemoryBudgetSpec `json:"memoryBudget,omitempty"`

	// placement says where every pod of the appliance may run (node selector, tolerations,
	// affinity, spread, priority, runtime class), with per-component overrides. On a GPU node
	// tainted nvidia.com/gpu (as the NVIDIA GPU Operator does) every pod needs the toleration,
	// not only Ollama's.
	// +optional
	Placement Placement `json:"placement,omitempty"`

	// networkPolicy locks the data plane: Ollama (no authentication of its own) and Qdrant
	// (whose payload holds every chunk's text) accept traffic only from the appliance's own
	// pods and the operator. Enforcement needs a CNI that implements NetworkPolicy.
	// +kubebuilder:default={}
	// +optional
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// retention says what happens to the appliance's data when it is deleted: Retain (default)
	// keeps the RAG server's volume (documents, originals) and Qdrant's claims (vectors)
	// together, so re-creating the appliance under the same name finds both; Delete removes
	// both. The Ollama model store is always deleted (it can be pulled again).
	// +kubebuilder:default=Retain
	// +kubebuilder:validation:Enum=Retain;Delete
	// +optional
	Retention RetentionPolicy `json:"retention,omitempty"`

	// slo is the latency the appliance holds: the RAG server slows its background work
	// (summaries, tags, embedding batches) when chat answers start later than the target, and
	// status.slo with the SLOMet condition report attainment over the window.
	// +kubebuilder:default={}
	// +optional
	SLO SLOSpec `json:"slo,omitempty"`

	// monitoring says how Prometheus finds the appliance's metrics.
	// +kubebuilder:default={}
	// +optional
	Monitoring MonitoringSpec `json:"monitoring,omitempty"`
}

// SLOSpec declares latency objectives.
type SLOSpec struct {
	// chatTTFTP95 is the target 95th percentile of chat answers' time to first token.
	// +kubebuilder:default="2s"
	// +optional
	ChatTTFTP95 Duration `json:"chatTTFTP95,omitempty"`

	// healthzP99 is the target 99th percentile of the RAG server's /healthz latency (the
	// server stays responsive during bulk ingest).
	// +kubebuilder:default="100ms"
	// +optional
	HealthzP99 Duration `json:"healthzP99,omitempty"`

	// window is the sliding window over which percentiles are measured.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="spec.slo.window must be between 1m and 24h"
	// +optional
	Window Duration `json:"window,omitempty"`
}

// MonitoringSpec is the appliance's metrics exposure.
type MonitoringSpec struct {
	// ollamaExporter runs a small exporter beside Ollama (a sidecar from the RAG server's
	// image) that turns /api/ps, /api/tags and /api/version into Prometheus metrics on port
	// 9400: Ollama has no /metrics of its own. Default true.
	// +kubebuilder:default=true
	// +optional
	OllamaExporter bool `json:"ollamaExporter"`

	// podMonitor renders a PodMonitor (monitoring.coreos.com/v1) selecting the RAG server's
	// metrics port and the Ollama exporter; it needs the Prometheus Operator's CRDs.
	// +kubebuilder:default=false
	// +optional
	PodMonitor bool `json:"podMonitor"`
}

// RetentionPolicy is what happens to an appliance's data volumes when it is deleted.
type RetentionPolicy string

const (
	RetentionRetain RetentionPolicy = "Retain"
	RetentionDelete RetentionPolicy = "Delete"
)

// NetworkPolicySpec says which NetworkPolicies the operator renders for the appliance.
type NetworkPolicySpec struct {
	// enabled renders one NetworkPolicy per component. Default true.
	// +kubebuilder:default=true
	// +optional
	Enabled bool `json:"enabled"`

	// ragServerFrom are the sources allowed to reach the RAG server's API port. Empty allows
	// any source: the server authenticates every request with an API key.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	RagServerFrom []networkingv1.NetworkPolicyPeer `json:"ragServerFrom,omitempty"`

	// restrictEgress limits what the appliance's pods may reach: DNS, the appliance's own pods,
	// and, for Ollama and the model Jobs, registryEgress (to pull base models). Default false:
	// egress is left open.
	// +optional
	RestrictEgress bool `json:"restrictEgress,omitempty"`

	// registryEgress are the destinations (ipBlock CIDRs of the model registry or a mirror)
	// Ollama and the model Jobs may reach on port 443 when restrictEgress is true.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	RegistryEgress []networkingv1.NetworkPolicyPeer `json:"registryEgress,omitempty"`
}

// PodPlacement are the scheduling fields of a pod.
type PodPlacement struct {
	// nodeSelector must match a node's labels for the pod to run there.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the pod run on tainted nodes (e.g. nvidia.com/gpu:NoSchedule).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity are node and pod (anti-)affinity rules.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// topologySpreadConstraints spread the pods across nodes or zones.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// priorityClassName names a PriorityClass (it must exist, or pods are refused).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// runtimeClassName names a RuntimeClass (e.g. nvidia, where the NVIDIA container runtime
	// is not containerd's default; it must exist, or pods are refused).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	RuntimeClassName *string `json:"runtimeClassName,omitempty"`
}

// Placement is the placement of every pod the operator creates, with per-component overrides.
// A field set in an override replaces the common value for that component (lists and maps are
// replaced, not merged); fields the override leaves unset keep the common value.
type Placement struct {
	PodPlacement `json:",inline"`

	// ollama overrides the placement of the Ollama pod.
	// +optional
	Ollama *PodPlacement `json:"ollama,omitempty"`

	// qdrant overrides the placement of the Qdrant pods.
	// +optional
	Qdrant *PodPlacement `json:"qdrant,omitempty"`

	// ragServer overrides the placement of the RAG server pods.
	// +optional
	RagServer *PodPlacement `json:"ragServer,omitempty"`

	// modelJobs overrides the placement of the model-creation Job pods. Unset, they follow
	// the common placement; they reach Ollama through its Service, so they need no GPU node.
	// +optional
	ModelJobs *PodPlacement `json:"modelJobs,omitempty"`
}

// KVCacheType is the element type of Ollama's KV cache.
// +kubebuilder:validation:Enum=f16;q8_0;q4_0
type KVCacheType string

const (
	KVCacheF16  KVCacheType = "f16"
	KVCacheQ8_0 KVCacheType = "q8_0"
	KVCacheQ4_0 KVCacheType = "q4_0"
)

// Duration is a positive Go duration string ("90s", "10m", "24h", "1h30m").
// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms')",message="must be a duration of at least 1ms (e.g. 90s, 10m)"
type Duration string

// KeepAlive is a Go duration string, optionally negative (negative keeps models loaded forever).
// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
// +kubebuilder:validation:MaxLength=32
type KeepAlive string

// OllamaSpec configures the Ollama Deployment.
// +kubebuilder:validation:XValidation:rule="!has(self.kvCacheType) || self.kvCacheType == 'f16' || (has(self.flashAttention) && self.flashAttention)",message="spec.ollama.kvCacheType q8_0 and q4_0 need spec.ollama.flashAttention: true (Ollama falls back to f16 without it)",fieldPath=".kvCacheType"
type OllamaSpec struct {
	// image is the Ollama container image, pinned to a version tag so the operator knows which
	// OLLAMA_* settings it honours. Default docker.io/ollama/ollama:0.32.15 (the newest release
	// when this operator was built).
	// +kubebuilder:default="docker.io/ollama/ollama:0.32.15"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// replicas is the number of Ollama servers. Above 1 they run as a StatefulSet (one model
	// store each, stable per-pod addresses through <name>-ollama-headless): every variant is
	// created, verified and warmed on each, and the RAG server balances its calls across them
	// (fewest outstanding requests per model; a failing server is skipped until it answers).
	// With gpus >= 1 every server needs its own GPU, so they land on different GPU nodes.
	// Going from 1 to more replaces the Deployment and its model store: the models are pulled
	// again into each server's store.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=8
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// numParallel is OLLAMA_NUM_PARALLEL: concurrent requests per loaded model. Embedding
	// models always get one slot whatever this says. The KV cache grows with it.
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	NumParallel int32 `json:"numParallel,omitempty"`

	// maxLoadedModels is OLLAMA_MAX_LOADED_MODELS; 0 lets Ollama choose (3 per GPU).
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +optional
	MaxLoadedModels int32 `json:"maxLoadedModels,omitempty"`

	// flashAttention is OLLAMA_FLASH_ATTENTION.
	// +kubebuilder:default=true
	// +optional
	FlashAttention bool `json:"flashAttention"`

	// kvCacheType is OLLAMA_KV_CACHE_TYPE: f16, q8_0 (half the memory of f16) or q4_0.
	// +kubebuilder:default="q8_0"
	// +optional
	KVCacheType KVCacheType `json:"kvCacheType,omitempty"`

	// multiuserCache is OLLAMA_MULTIUSER_CACHE. Default false. Ollama removed it in v0.30.0: for
	// such images it is not rendered and status says it is ignored. On older images true is
	// known to abort Ollama's runner once two requests for one model run in parallel; it is
	// admitted but reported (condition OllamaSettings, reason MultiuserCacheCrashRisk).
	// +kubebuilder:default=false
	// +optional
	MultiuserCache bool `json:"multiuserCache"`

	// keepAlive is OLLAMA_KEEP_ALIVE: how long an idle model stays loaded; negative = forever.
	// +kubebuilder:default="24h"
	// +optional
	KeepAlive KeepAlive `json:"keepAlive,omitempty"`

	// gpuOverhead is OLLAMA_GPU_OVERHEAD, memory Ollama leaves unused per GPU (rendered in
	// bytes). Default 512Mi; zero or more.
	// +kubebuilder:default="512Mi"
	// +kubebuilder:validation:XValidation:rule="!quantity(self).isLessThan(quantity('0'))",message="spec.ollama.gpuOverhead must not be negative"
	// +optional
	GPUOverhead *resource.Quantity `json:"gpuOverhead,omitempty"`

	// loadTimeout is OLLAMA_LOAD_TIMEOUT: how long a model load may stall before it fails.
	// +kubebuilder:default="10m"
	// +optional
	LoadTimeout Duration `json:"loadTimeout,omitempty"`

	// maxQueue is OLLAMA_MAX_QUEUE, requests waiting to be scheduled before Ollama answers 503.
	// Unset keeps Ollama's default (512). Requests for an already loaded model bypass it.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +optional
	MaxQueue *int32 `json:"maxQueue,omitempty"`

	// gpus is the number of nvidia.com/gpu the Ollama pod requests; 0 runs on CPU.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=8
	// +optional
	GPUs int32 `json:"gpus"`

	// resources are the Ollama container's requests and limits (the GPU request is added).
	// Unset requests default to cpu 2 and a memory request equal to the declared models'
	// weights plus KV caches (the memory budget's model rows); no memory limit is set, since
	// on unified memory the GPU's share is charged to the same pool (docs/crd-reference.md).
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// storage is the model store volume.
	// +kubebuilder:default={size:"200Gi"}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// env is extra environment for the Ollama container. A name the operator renders itself
	// (OLLAMA_NUM_PARALLEL, …) is refused: declare it through its field.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(e, !(e.name in ['OLLAMA_HOST','OLLAMA_MODELS','OLLAMA_NUM_PARALLEL','OLLAMA_MAX_LOADED_MODELS','OLLAMA_FLASH_ATTENTION','OLLAMA_KV_CACHE_TYPE','OLLAMA_MULTIUSER_CACHE','OLLAMA_KEEP_ALIVE','OLLAMA_GPU_OVERHEAD','OLLAMA_LOAD_TIMEOUT','OLLAMA_MAX_QUEUE','CUDA_VISIBLE_DEVICES','MALLOC_ARENA_MAX']))",message="spec.ollama.env must not set a variable the operator renders from a field (OLLAMA_NUM_PARALLEL, OLLAMA_KV_CACHE_TYPE, …): set the field instead"
	Env []corev1.EnvVar `json:"env,omitempty"`
}

// StorageSpec is a PersistentVolumeClaim's size and class. The size may grow (the claim is
// expanded where its StorageClass allows expansion), never shrink; the class is fixed.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.size) || !has(self.size) || !quantity(self.size).isLessThan(quantity(oldSelf.size))",message="size cannot shrink: a PersistentVolumeClaim can only grow (copy the data to a new appliance to shrink)",fieldPath=".size"
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="storageClassName is immutable: a claim cannot move to another StorageClass",fieldPath=".storageClassName"
type StorageSpec struct {
	// size is the requested capacity; it may grow, never shrink.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(self).isGreaterThan(quantity('0'))",message="size must be positive"
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName selects the StorageClass; unset uses the cluster default. Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// ModelRole says what a variant is for.
// +kubebuilder:validation:Enum=chat;embedding;reasoning;classification
type ModelRole string

const (
	RoleChat           ModelRole = "chat"
	RoleEmbedding      ModelRole = "embedding"
	RoleReasoning      ModelRole = "reasoning"
	RoleClassification ModelRole = "classification"
)

// ModelVariant is one `ollama create NAME` FROM a base model with PARAMETER lines.
type ModelVariant struct {
	// name is the variant's Ollama model name (e.g. qwen3-rag).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._-]*(:[a-zA-Z0-9._-]+)?$`
	Name string `json:"name"`

	// from is the base model pulled from the registry (e.g. qwen3:8b).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._/-]*(:[a-zA-Z0-9._-]+)?$`
	From string `json:"from"`

	// role is what the variant is used for: chat, embedding, reasoning or classification.
	// Embedding variants always run with one Ollama slot.
	// +required
	Role ModelRole `json:"role"`

	// parameters are the Modelfile PARAMETER lines, by their camelCase names. Only names
	// Ollama accepts exist here; an unknown name is refused.
	// +required
	Parameters ModelParameters `json:"parameters"`

	// system is an optional SYSTEM prompt baked into the variant.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	System string `json:"system,omitempty"`

	// template is an optional TEMPLATE overriding the base model's prompt template.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Template string `json:"template,omitempty"`

	// size is the expected size of the base model's weights, used by the memory budget (and
	// Ollama's memory request) while the model is not yet on the server.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('-')",message="spec.models[].size must not be negative"
	Size *resource.Quantity `json:"size,omitempty"`
}

// ModelParameters are Ollama's Modelfile parameters (api/types.go FormatParams); the JSON
// names are camelCase forms of Ollama's snake_case ones.
type ModelParameters struct {
	// numCtx is num_ctx, the context window. Always set: unset, Ollama picks one from free
	// memory (256k on a 128 GB machine), which sizes the KV cache.
	// +required
	// +kubebuilder:validation:Minimum=128
	// +kubebuilder:validation:Maximum=1048576
	NumCtx int32 `json:"numCtx"`
	// numThread is num_thread, CPU threads for the model (10 = the GB10's performance cores).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	NumThread *int32 `json:"numThread,omitempty"`
	// numGPU is num_gpu, layers offloaded to the GPU (999 = all).
	// +optional
	// +kubebuilder:validation:Minimum=-1
	// +kubebuilder:validation:Maximum=999
	NumGPU *int32 `json:"numGPU,omitempty"`
	// numBatch is num_batch, the prompt-processing batch size.
	// +optional
	// +kubebuilder:validation:Minimum=1
	NumBatch *int32 `json:"numBatch,omitempty"`
	// mainGPU is main_gpu.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MainGPU *int32 `json:"mainGPU,omitempty"`
	// useMmap is use_mmap.
	// +optional
	UseMmap *bool `json:"useMmap,omitempty"`
	// numKeep is num_keep, tokens kept when the context is shifted.
	// +optional
	// +kubebuilder:validation:Minimum=0
	NumKeep *int32 `json:"numKeep,omitempty"`
	// seed is the sampling seed.
	// +optional
	Seed *int32 `json:"seed,omitempty"`
	// numPredict is num_predict, the most tokens generated (-1 = unlimited).
	// +optional
	// +kubebuilder:validation:Minimum=-2
	NumPredict *int32 `json:"numPredict,omitempty"`
	// topK is top_k.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TopK *int32 `json:"topK,omitempty"`
	// topP is top_p, between 0 and 1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	TopP *Number `json:"topP,omitempty"`
	// minP is min_p, between 0 and 1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	MinP *Number `json:"minP,omitempty"`
	// typicalP is typical_p, between 0 and 1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	TypicalP *Number `json:"typicalP,omitempty"`
	// repeatLastN is repeat_last_n.
	// +optional
	// +kubebuilder:validation:Minimum=-1
	RepeatLastN *int32 `json:"repeatLastN,omitempty"`
	// temperature is the sampling temperature, 0 to 2.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2
	Temperature *Number `json:"temperature,omitempty"`
	// repeatPenalty is repeat_penalty.
	// +optional
	// +kubebuilder:validation:Minimum=0
	RepeatPenalty *Number `json:"repeatPenalty,omitempty"`
	// presencePenalty is presence_penalty.
	// +optional
	PresencePenalty *Number `json:"presencePenalty,omitempty"`
	// frequencyPenalty is frequency_penalty.
	// +optional
	FrequencyPenalty *Number `json:"frequencyPenalty,omitempty"`
	// stop are stop sequences.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=64
	Stop []string `json:"stop,omitempty"`
}

// RuntimeSpec is the process tuning of guide §3. Each value is rendered only into the pods
// where it has an effect (see docs/crd-reference.md#runtime).
type RuntimeSpec struct {
	// ompNumThreads is OMP_NUM_THREADS for OpenMP code in the RAG server pod (parsers/OCR).
	// Ollama's build has GGML OpenMP off, so model threads are set by num_thread instead.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	// +optional
	OMPNumThreads int32 `json:"ompNumThreads,omitempty"`

	// ompSchedule is OMP_SCHEDULE for the RAG server pod.
	// +kubebuilder:default="guided"
	// +kubebuilder:validation:Enum=static;dynamic;guided;auto
	// +optional
	OMPSchedule string `json:"ompSchedule,omitempty"`

	// mallocArenaMax is MALLOC_ARENA_MAX for glibc processes: Ollama's runners.
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +optional
	MallocArenaMax int32 `json:"mallocArenaMax,omitempty"`

	// cudaVisibleDevices is CUDA_VISIBLE_DEVICES for the Ollama pod (the GPU user).
	// +kubebuilder:default="0"
	// +kubebuilder:validation:Pattern=`^[0-9A-Za-z,-]*$`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	CUDAVisibleDevices string `json:"cudaVisibleDevices,omitempty"`

	// pytorchCudaAllocConf is PYTORCH_CUDA_ALLOC_CONF for PyTorch processes. No container of
	// the appliance runs PyTorch, so it is rendered into the RAG server pod only, for parser
	// add-ons that do.
	// +kubebuilder:default="expandable_segments:True"
	// +kubebuilder:validation:MaxLength=256
	// +optional
	PytorchCUDAAllocConf string `json:"pytorchCudaAllocConf,omitempty"`
}

// Distance is the vector distance function of a collection.
// +kubebuilder:validation:Enum=Cosine;Dot;Euclid;Manhattan
type Distance string

// QdrantSpec configures the Qdrant StatefulSet and its collection.
// +kubebuilder:validation:XValidation:rule="!has(self.collection) || !has(self.collection.replicationFactor) || self.collection.replicationFactor <= (has(self.replicas) ? self.replicas : 1)",message="spec.qdrant.collection.replicationFactor must not exceed spec.qdrant.replicas: each copy of a shard lives on a different peer",fieldPath=".collection.replicationFactor"
type QdrantSpec struct {
	// image is the Qdrant container image.
	// +kubebuilder:default="docker.io/qdrant/qdrant:v1.17.1-unprivileged"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// replicas is the number of Qdrant pods. Above 1 Qdrant runs in distributed mode: peers
	// talk on port 6335, the first pod bootstraps the cluster and the others join it through
	// the headless Service's stable names; collection.shardNumber, replicationFactor and
	// writeConsistencyFactor say how the collection is spread. It cannot shrink: shards on a
	// removed peer would be lost (move them with Qdrant's API first, then create anew).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="spec.qdrant.replicas cannot shrink: the shards on the removed peers would be lost"
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// resources are the Qdrant container's requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// storage is the Qdrant data volume (volume claim template).
	// +kubebuilder:default={size:"50Gi"}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// apiKeySecretRef names a Secret key holding Qdrant's API key. Unset, the operator creates
	// <name>-qdrant-api-key once (keys api-key and read-only-api-key, random) and never rewrites
	// it: Qdrant always requires a key. Changing the key's value rolls Qdrant and the RAG server.
	// +optional
	APIKeySecretRef *corev1.SecretKeySelector `json:"apiKeySecretRef,omitempty"`

	// readOnlyAPIKeySecretRef names a Secret key holding Qdrant's read-only API key, which the
	// RAG server uses for searches. Unset with apiKeySecretRef set: no read-only key; unset
	// with apiKeySecretRef unset: the generated Secret's read-only-api-key.
	// +optional
	ReadOnlyAPIKeySecretRef *corev1.SecretKeySelector `json:"readOnlyAPIKeySecretRef,omitempty"`

	// collection is the tuned collection the RAG server writes to.
	// +kubebuilder:default={}
	// +optional
	Collection CollectionSpec `json:"collection,omitempty"`

	// search holds search-time parameters used by the RAG server.
	// +kubebuilder:default={}
	// +optional
	Search SearchSpec `json:"search,omitempty"`
}

// CollectionSpec is the Qdrant collection (guide §5).
// +kubebuilder:validation:XValidation:rule="!has(self.writeConsistencyFactor) || self.writeConsistencyFactor <= (has(self.replicationFactor) ? self.replicationFactor : 1)",message="spec.qdrant.collection.writeConsistencyFactor must not exceed replicationFactor: a write cannot wait for more copies than exist",fieldPath=".writeConsistencyFactor"
type CollectionSpec struct {
	// name is the collection name.
	// +kubebuilder:default="documents"
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_-]{1,64}$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.qdrant.collection.name is immutable: the operator never renames or drops a collection holding data"
	// +optional
	Name string `json:"name,omitempty"`

	// vectorSize is the vector dimension; it must equal the embedding model's output (768 for
	// nomic-embed-text). Fixed at creation.
	// +kubebuilder:default=768
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.qdrant.collection.vectorSize is immutable: Qdrant fixes it at creation; declare a new collection name to change it"
	// +optional
	VectorSize int32 `json:"vectorSize,omitempty"`

	// distance is the similarity function. Fixed at creation.
	// +kubebuilder:default="Cosine"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.qdrant.collection.distance is immutable: Qdrant fixes it at creation; declare a new collection name to change it"
	// +optional
	Distance Distance `json:"distance,omitempty"`

	// onDisk keeps original vectors on disk (memmap) instead of RAM.
	// +kubebuilder:default=false
	// +optional
	OnDisk bool `json:"onDisk"`

	// hnsw is the HNSW index build configuration.
	// +kubebuilder:default={}
	// +optional
	HNSW HNSWSpec `json:"hnsw,omitempty"`

	// quantization is the vector quantization.
	// +kubebuilder:default={}
	// +optional
	Quantization QuantizationSpec `json:"quantization,omitempty"`

	// optimizers are the optimizer thresholds.
	// +kubebuilder:default={}
	// +optional
	Optimizers OptimizersSpec `json:"optimizers,omitempty"`

	// shardNumber is how many shards the collection is split into, set at creation (Qdrant
	// cannot change it later; a difference is reported). Unset: one per Qdrant replica.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +optional
	ShardNumber *int32 `json:"shardNumber,omitempty"`

	// replicationFactor is how many copies of each shard Qdrant keeps, each on another peer;
	// at most spec.qdrant.replicas. Updated in place when changed.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +optional
	ReplicationFactor int32 `json:"replicationFactor,omitempty"`

	// writeConsistencyFactor is how many copies of a shard must acknowledge a write before it
	// succeeds; at most replicationFactor. Updated in place when changed.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +optional
	WriteConsistencyFactor int32 `json:"writeConsistencyFactor,omitempty"`
}

// HNSWSpec is the HNSW build configuration; ef is a search-time value (spec.qdrant.search).
type HNSWSpec struct {
	// m is edges per node; 0 disables the HNSW index.
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +optional
	M int32 `json:"m"`

	// efConstruct is the build-time candidate list size.
	// +kubebuilder:default=200
	// +kubebuilder:validation:Minimum=4
	// +kubebuilder:validation:Maximum=4096
	// +optional
	EfConstruct int32 `json:"efConstruct,omitempty"`
}

// QuantizationType selects the quantization method.
// +kubebuilder:validation:Enum=scalar;none
type QuantizationType string

const (
	QuantizationScalar QuantizationType = "scalar"
	QuantizationNone   QuantizationType = "none"
)

// QuantizationSpec is the collection's quantization: scalar int8, or none.
type QuantizationSpec struct {
	// type is scalar (int8) or none.
	// +kubebuilder:default="scalar"
	// +optional
	Type QuantizationType `json:"type,omitempty"`

	// alwaysRam keeps quantized vectors in RAM for rescoring.
	// +kubebuilder:default=true
	// +optional
	AlwaysRAM bool `json:"alwaysRam"`
}

// OptimizersSpec are Qdrant optimizer settings.
type OptimizersSpec struct {
	// indexingThreshold is the segment size (KB of vectors) above which HNSW is built;
	// raised to delay index rebuilds during bulk uploads. 0 disables indexing.
	// +kubebuilder:default=50000
	// +kubebuilder:validation:Minimum=0
	// +optional
	IndexingThreshold int64 `json:"indexingThreshold"`

	// defaultSegmentNumber is the target number of segments.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	DefaultSegmentNumber int32 `json:"defaultSegmentNumber,omitempty"`

	// memmapThreshold is the segment size (KB) above which vectors are memory-mapped.
	// +kubebuilder:default=200000
	// +kubebuilder:validation:Minimum=0
	// +optional
	MemmapThreshold int64 `json:"memmapThreshold"`

	// bulkIngestThreshold opens a bulk-ingest window (Qdrant's advice for bulk uploads): when
	// the RAG server's backlog reaches this many documents, the operator sets the collection's
	// indexing threshold to 0 so HNSW is built once after the upload instead of over and over
	// during it, and restores indexingThreshold when the backlog has drained. Searches still
	// work meanwhile (unindexed segments are searched exactly). 0 turns the window off.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	BulkIngestThreshold int32 `json:"bulkIngestThreshold"`
}

// SearchSpec holds search-time parameters.
type SearchSpec struct {
	// hnswEf is the search-time HNSW candidate list size (Qdrant does not store it on the
	// collection; the RAG server sends it with every search).
	// +kubebuilder:default=128
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	// +optional
	HNSWEf int32 `json:"hnswEf,omitempty"`
}

// RagServerSpec configures the RAG server.
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || self.replicas <= 1 || (has(self.database) && self.database.type == 'postgres')",message="spec.ragServer.replicas above 1 needs spec.ragServer.database.type: postgres (the embedded database lives on one ReadWriteOnce volume)",fieldPath=".replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.chunking) || self.chunking.overlap < self.chunking.size",message="spec.ragServer.chunking.overlap must be less than spec.ragServer.chunking.size",fieldPath=".chunking.overlap"
type RagServerSpec struct {
	// image is the RAG server image.
	// +kubebuilder:default="ghcr.io/ragstack/rag-server:v0.1.0"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// replicas is the number of RAG server pods. With the embedded database it is 1, or 0 to
	// stop the server (the database lives on a ReadWriteOnce volume, so one pod owns it); above
	// 1 needs database.type postgres. Several replicas roll one at a time, keep a
	// PodDisruptionBudget and spread across nodes, and share the background limits (the
	// concurrency.warmingMaxConcurrentQueries and embedConcurrency totals are divided among them).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16
	// +optional
	Replicas int32 `json:"replicas"`

	// database is where the server keeps its state (documents, the job queue, sessions,
	// originals): the embedded SQLite database on the data volume, or PostgreSQL.
	// +kubebuilder:default={type:embedded}
	// +optional
	Database DatabaseSpec `json:"database,omitempty"`

	// resources are the RAG server container's requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// storage is the data volume holding originals and the embedded store.
	// +kubebuilder:default={size:"20Gi"}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// models maps the server's uses to spec.models[] variant names.
	// +kubebuilder:default={}
	// +optional
	Models ModelRoles `json:"models,omitempty"`

	// concurrency are the limits that keep the server responsive (guide §4, corrected).
	// +kubebuilder:default={}
	// +optional
	Concurrency ConcurrencySpec `json:"concurrency,omitempty"`

	// tokens is the prompt budget; its sum must fit the chat variant's numCtx.
	// +kubebuilder:default={}
	// +optional
	Tokens TokenBudget `json:"tokens,omitempty"`

	// chunking is how documents are split before embedding.
	// +kubebuilder:default={}
	// +optional
	Chunking ChunkingSpec `json:"chunking,omitempty"`

	// retrieval are the search settings for answers.
	// +kubebuilder:default={}
	// +optional
	Retrieval RetrievalSpec `json:"retrieval,omitempty"`

	// uploads are the limits on uploaded files.
	// +kubebuilder:default={}
	// +optional
	Uploads UploadLimits `json:"uploads,omitempty"`

	// auth says where API keys come from.
	// +optional
	Auth AuthSpec `json:"auth,omitempty"`

	// ingress exposes the RAG server (API and web UI) outside the cluster through an Ingress.
	// Answers stream as server-sent events; the server sends X-Accel-Buffering: no, which
	// ingress-nginx honours, so no buffering annotation is needed there.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// gatewayRoute exposes the RAG server through a Gateway API HTTPRoute attached to the
	// named Gateways (the Gateway API CRDs must be installed).
	// +optional
	GatewayRoute *GatewayRouteSpec `json:"gatewayRoute,omitempty"`
}

// DatabaseType selects the RAG server's state store.
// +kubebuilder:validation:Enum=embedded;postgres
type DatabaseType string

const (
	DatabaseEmbedded DatabaseType = "embedded"
	DatabasePostgres DatabaseType = "postgres"
)

// DatabaseSpec is the RAG server's state store.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'postgres' || has(self.uriSecretRef)",message="spec.ragServer.database.uriSecretRef is required when type is postgres: it names the Secret key holding the connection URI",fieldPath=".uriSecretRef"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.type) || !has(self.type) || self.type == oldSelf.type",message="spec.ragServer.database.type is immutable: documents are not moved between databases (create a new appliance and upload again)",fieldPath=".type"
type DatabaseSpec struct {
	// type is embedded (SQLite on the server's data volume; one replica) or postgres (state,
	// queue and originals in PostgreSQL; replicas share it). Fixed once set.
	// +kubebuilder:default=embedded
	// +optional
	Type DatabaseType `json:"type,omitempty"`

	// uriSecretRef names the Secret key holding a libpq connection URI
	// (postgresql://user:password@host:5432/db?sslmode=verify-full), such as the key uri of
	// the <cluster>-app Secret CloudNativePG generates. sslmode and the other URI parameters
	// are honoured. Changing the Secret's value rolls the server.
	// +optional
	URISecretRef *corev1.SecretKeySelector `json:"uriSecretRef,omitempty"`
}

// IngressSpec is the Ingress of the RAG server.
type IngressSpec struct {
	// className is the IngressClass (unset: the cluster's default class).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ClassName *string `json:"className,omitempty"`

	// host is the DNS name the Ingress answers for.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Host string `json:"host"`

	// tlsSecretName names a Secret of type kubernetes.io/tls for host (e.g. one cert-manager
	// issues from an annotation below); unset serves plain HTTP.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// annotations are added to the Ingress (controller settings, cert-manager issuers).
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Annotations map[string]string `json:"annotations,omitempty"`
}

// GatewayRouteSpec is the HTTPRoute of the RAG server.
type GatewayRouteSpec struct {
	// parentRefs are the Gateways (and listeners) the route attaches to.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	ParentRefs []GatewayParentRef `json:"parentRefs"`

	// hostnames the route matches (unset: every hostname of the listener).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Hostnames []string `json:"hostnames,omitempty"`
}

// GatewayParentRef names a Gateway.
type GatewayParentRef struct {
	// name is the Gateway's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// namespace is the Gateway's namespace (unset: the appliance's).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// sectionName is the Gateway listener's name (unset: every listener that allows the route).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SectionName string `json:"sectionName,omitempty"`
}

// MemoryBudgetSpec is the input of the memory budget (guide §6) beyond what the operator reads
// from Ollama and Qdrant.
type MemoryBudgetSpec struct {
	// total is the memory of the machine the appliance shares (GB10: 128 GB unified, one pool
	// for GPU and CPU). Unset, the largest allocatable memory of the nodes Ollama may run on.
	// +optional
	// +kubebuilder:validation:XValidation:rule="quantity(self).isGreaterThan(quantity('0'))",message="spec.memoryBudget.total must be positive"
	Total *resource.Quantity `json:"total,omitempty"`

	// expectedPoints sizes Qdrant's share while the collection holds fewer points.
	// +kubebuilder:default=100000
	// +kubebuilder:validation:Minimum=0
	// +optional
	ExpectedPoints int64 `json:"expectedPoints,omitempty"`

	// overheads are other consumers of the same memory (the RAG server, the OS, reservations).
	// +kubebuilder:default={{name:"rag-server",size:"1Gi"},{name:"os-and-reservations",size:"2560Mi"}}
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Overheads []MemoryOverhead `json:"overheads,omitempty"`
}

// MemoryOverhead is a named, declared consumer of memory.
type MemoryOverhead struct {
	// name says what consumes it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name"`
	// size is how much (zero or more).
	// +required
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('-')",message="spec.memoryBudget.overheads[].size must not be negative"
	Size resource.Quantity `json:"size"`
}

// ModelRoles names the variant used for each task.
type ModelRoles struct {
	// chat answers questions.
	// +kubebuilder:default="qwen3-rag"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Chat string `json:"chat,omitempty"`
	// embedding embeds chunks and queries.
	// +kubebuilder:default="nomic-embed-rag"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Embedding string `json:"embedding,omitempty"`
	// summary writes per-document summaries.
	// +kubebuilder:default="qwen3-rag"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Summary string `json:"summary,omitempty"`
	// tagging classifies documents into tags.
	// +kubebuilder:default="deepseek-r1-rag"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Tagging string `json:"tagging,omitempty"`
}

// ConcurrencySpec bounds the work the RAG server sends to Ollama.
type ConcurrencySpec struct {
	// embedConcurrency is the most /api/embed batch calls in flight. Ollama runs an embedding
	// model with one slot, so more than 2 only queues inside Ollama.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +optional
	EmbedConcurrency int32 `json:"embedConcurrency,omitempty"`

	// embedBatchSize is the most chunks per /api/embed call.
	// +kubebuilder:default=32
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=512
	// +optional
	EmbedBatchSize int32 `json:"embedBatchSize,omitempty"`

	// maxConcurrentProcessing is the most documents parsed/chunked/embedded at once.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	MaxConcurrentProcessing int32 `json:"maxConcurrentProcessing,omitempty"`

	// jobWorkers is the number of background job workers (summaries, tags, reprocessing).
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	JobWorkers int32 `json:"jobWorkers,omitempty"`

	// ragTimeout is the deadline of one answer.
	// +kubebuilder:default="60s"
	// +optional
	RagTimeout Duration `json:"ragTimeout,omitempty"`

	// warmingMaxConcurrentQueries is the most background LLM calls (summaries, tags, warming)
	// at once; it must be below spec.ollama.numParallel so a chat slot stays free. 0 turns
	// background LLM work off (the only choice with numParallel 1).
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=63
	// +optional
	WarmingMaxConcurrentQueries int32 `json:"warmingMaxConcurrentQueries"`

	// maxQueuedUploads is the most documents waiting for processing; beyond it uploads get
	// 503 with Retry-After.
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxQueuedDocuments int32 `json:"maxQueuedDocuments,omitempty"`
}

// TokenBudget is the chat prompt budget in tokens.
type TokenBudget struct {
	// context is the budget for retrieved chunks.
	// +kubebuilder:default=6000
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	Context int32 `json:"context"`
	// history is the budget for earlier turns.
	// +kubebuilder:default=1500
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	History int32 `json:"history"`
	// system is the budget for the system prompt.
	// +kubebuilder:default=500
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	System int32 `json:"system"`
	// response is the budget for the answer. The guide's 6000+1500+500 leaves 192 tokens of a
	// num_ctx of 8192; raise the chat variant's numCtx for longer answers.
	// +kubebuilder:default=192
	// +kubebuilder:validation:Minimum=16
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	Response int32 `json:"response"`
}

// ChunkingSpec is how text is split before embedding.
type ChunkingSpec struct {
	// size is the target chunk size in tokens.
	// +kubebuilder:default=200
	// +kubebuilder:validation:Minimum=16
	// +kubebuilder:validation:Maximum=8192
	// +optional
	Size int32 `json:"size"`
	// overlap is the tokens shared by consecutive chunks.
	// +kubebuilder:default=40
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=8191
	// +optional
	Overlap int32 `json:"overlap"`
}

// RetrievalSpec are search settings for answers.
type RetrievalSpec struct {
	// topK is how many chunks are retrieved.
	// +kubebuilder:default=8
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TopK int32 `json:"topK,omitempty"`
	// scoreThreshold drops chunks scoring below it.
	// +kubebuilder:default=0.3
	// +kubebuilder:validation:Minimum=-1
	// +kubebuilder:validation:Maximum=1
	// +optional
	ScoreThreshold *Number `json:"scoreThreshold,omitempty"`
	// maxChunksPerDocument caps chunks from one document.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxChunksPerDocument int32 `json:"maxChunksPerDocument,omitempty"`
	// documentTitles heads each document's sources in the chat prompt with its name. Off by
	// default: citations name the document for the reader anyway, and the names cost prompt
	// tokens (time to first token) on every question; turn it on when questions name
	// documents ("what does the 2024 report say …").
	// +optional
	DocumentTitles bool `json:"documentTitles,omitempty"`
}

// UploadLimits bound uploads.
type UploadLimits struct {
	// maxFileSize is the largest file accepted. Default 100Mi; at least 1Ki.
	// +kubebuilder:default="100Mi"
	// +kubebuilder:validation:XValidation:rule="!quantity(self).isLessThan(quantity('1Ki'))",message="spec.ragServer.uploads.maxFileSize must be at least 1Ki"
	// +optional
	MaxFileSize *resource.Quantity `json:"maxFileSize,omitempty"`
	// maxFilesPerRequest is the most files in one upload request.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	MaxFilesPerRequest int32 `json:"maxFilesPerRequest,omitempty"`
	// allowedTypes are the accepted file extensions.
	// +kubebuilder:default={txt,md,html,csv,pdf,docx}
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Enum=txt;md;html;csv;pdf;docx
	// +optional
	AllowedTypes []string `json:"allowedTypes,omitempty"`
}

// AuthSpec says where API keys come from.
type AuthSpec struct {
	// apiKeysSecretRef names a Secret whose keys are API key records; unset, the operator
	// creates <name>-rag-api-keys with one admin key.
	// +optional
	APIKeysSecretRef *corev1.LocalObjectReference `json:"apiKeysSecretRef,omitempty"`
}

// RagApplianceStatus is what the operator observed.
type RagApplianceStatus struct {
	// observedGeneration is the spec generation the last successful reconcile acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (every component condition True), OllamaReady, QdrantReady,
	// RagServerReady, ModelsReady, CollectionReady; informational: ModelsResident,
	// MemoryBudget, OllamaSettings. Reasons are listed in docs/crd-reference.md.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// endpoints are the in-cluster addresses of the components.
	// +optional
	Endpoints Endpoints `json:"endpoints,omitempty"`

	// ignoredSettings are declared settings the Ollama version in use ignores, so they are not
	// rendered (e.g. OLLAMA_MULTIUSER_CACHE from v0.30).
	// +optional
	// +listType=atomic
	IgnoredSettings []string `json:"ignoredSettings,omitempty"`

	// ollamaVersion is the version the running Ollama reports (/api/version).
	// +optional
	OllamaVersion string `json:"ollamaVersion,omitempty"`

	// models is the observed state of each declared variant.
	// +optional
	// +listType=map
	// +listMapKey=name
	Models []ModelStatus `json:"models,omitempty"`

	// collection is the collection as Qdrant reports it.
	// +optional
	Collection *CollectionStatus `json:"collection,omitempty"`

	// memory is the memory budget (guide §6), computed from what the parts report.
	// +optional
	Memory *MemoryStatus `json:"memory,omitempty"`

	// slo is the latency objectives' attainment, read from the RAG server's metrics.
	// +optional
	SLO *SLOStatus `json:"slo,omitempty"`
}

// SLOStatus is what the RAG server measured against spec.slo.
type SLOStatus struct {
	// window is the window the percentiles cover.
	Window string `json:"window"`
	// chatTTFTP95 is chat time to first token at the 95th percentile.
	// +optional
	ChatTTFTP95 *ObjectiveStatus `json:"chatTTFTP95,omitempty"`
	// healthzP99 is /healthz latency at the 99th percentile.
	// +optional
	HealthzP99 *ObjectiveStatus `json:"healthzP99,omitempty"`
	// backgroundThrottle is the RAG server's background concurrency as a share of its
	// configured limit ("1.00" = unthrottled), averaged over its replicas.
	// +optional
	BackgroundThrottle string `json:"backgroundThrottle,omitempty"`
}

// ObjectiveStatus is one objective's attainment.
type ObjectiveStatus struct {
	// target is the declared objective (a duration).
	Target string `json:"target"`
	// measured is the percentile over the window (a duration), the worst of the replicas;
	// empty while there are no samples.
	// +optional
	Measured string `json:"measured,omitempty"`
	// samples is the number of measurements in the window, all replicas together.
	Samples int64 `json:"samples"`
	// met is true when measured is at most target (and there were samples).
	Met bool `json:"met"`
}

// ModelStatus is one variant as Ollama reports it.
type ModelStatus struct {
	// name is the variant, as declared in spec.models[].name.
	Name string `json:"name"`
	// ready is true when the variant exists with every declared parameter.
	Ready bool `json:"ready"`
	// attempts counts model-creation Jobs that ended without the variant ready, for the
	// exponential backoff between retries; reset once the variant is ready.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// retryAt is the earliest time the next model-creation Job for this variant may start
	// (exponential backoff after a Job that did not leave the variant ready, and after a
	// recent success, so a variant that keeps vanishing is not re-created in a loop).
	// +optional
	RetryAt *metav1.Time `json:"retryAt,omitempty"`
	// specHash identifies the declared variant the state refers to.
	// +optional
	SpecHash string `json:"specHash,omitempty"`
	// digest is the variant's manifest digest.
	// +optional
	Digest string `json:"digest,omitempty"`
	// parameters are the parameters Ollama reports applied, name=value.
	// +optional
	// +listType=atomic
	Parameters []string `json:"parameters,omitempty"`
	// job is the model-creation Job last run for this variant.
	// +optional
	Job string `json:"job,omitempty"`
	// resident is true when /api/ps lists the variant loaded with the declared context length.
	// +optional
	Resident bool `json:"resident,omitempty"`
	// lastError says why the variant is not ready.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// servers is the variant on each server of an Ollama pool (spec.ollama.replicas above 1),
	// in pod order: the variant is ready only when it is present on every one.
	// +optional
	// +listType=atomic
	Servers []ModelServerStatus `json:"servers,omitempty"`
}

// ModelServerStatus is one variant on one Ollama server of a pool.
type ModelServerStatus struct {
	// server is the Ollama pod's address.
	Server string `json:"server"`
	// present is true when the server lists the variant.
	Present bool `json:"present"`
	// digest is the variant's manifest digest on that server.
	// +optional
	Digest string `json:"digest,omitempty"`
}

// CollectionStatus is the collection's applied configuration as Qdrant reports it.
type CollectionStatus struct {
	// name is the collection's name.
	Name string `json:"name"`
	// status is Qdrant's collection status: green (ready), yellow (optimizing), grey (optimizations pending) or red (failed).
	// +optional
	Status string `json:"status,omitempty"`
	// vectorSize is the vector dimension Qdrant reports.
	// +optional
	VectorSize int64 `json:"vectorSize,omitempty"`
	// distance is the similarity function Qdrant reports (Cosine, Dot, Euclid, Manhattan).
	// +optional
	Distance string `json:"distance,omitempty"`
	// onDisk is true when original vectors are memory-mapped from disk.
	// +optional
	OnDisk bool `json:"onDisk,omitempty"`
	// pointsCount is the number of points (chunks) stored.
	// +optional
	PointsCount int64 `json:"pointsCount,omitempty"`
	// hnswM is the applied HNSW m (edges per node; 0 = no index).
	// +optional
	HNSWM int64 `json:"hnswM,omitempty"`
	// hnswEfConstruct is the applied HNSW build-time candidate list size.
	// +optional
	HNSWEfConstruct int64 `json:"hnswEfConstruct,omitempty"`
	// quantization is "scalar-int8", "scalar-int8-always-ram" or "none".
	// +optional
	Quantization string `json:"quantization,omitempty"`
	// indexingThreshold is the applied optimizer indexing threshold in KB (0 = indexing off).
	// +optional
	IndexingThreshold int64 `json:"indexingThreshold,omitempty"`
	// defaultSegmentNumber is the applied target number of segments.
	// +optional
	DefaultSegmentNumber int64 `json:"defaultSegmentNumber,omitempty"`
	// memmapThreshold is the applied segment size in KB above which vectors are memory-mapped.
	// +optional
	MemmapThreshold int64 `json:"memmapThreshold,omitempty"`
	// shardNumber is the number of shards Qdrant reports.
	// +optional
	ShardNumber int64 `json:"shardNumber,omitempty"`
	// replicationFactor is the copies of each shard Qdrant keeps.
	// +optional
	ReplicationFactor int64 `json:"replicationFactor,omitempty"`
	// writeConsistencyFactor is the copies that must acknowledge a write.
	// +optional
	WriteConsistencyFactor int64 `json:"writeConsistencyFactor,omitempty"`
}

// MemoryStatus is the memory budget table.
type MemoryStatus struct {
	// total is the memory the appliance shares, as a quantity (e.g. 119Gi).
	Total string `json:"total"`
	// totalSource says where total comes from: declared (spec.memoryBudget.total) or the
	// largest allocatable memory of the nodes Ollama may run on.
	TotalSource string `json:"totalSource"`
	// used is the sum of the rows.
	Used string `json:"used"`
	// headroom is total - used (negative when it does not fit).
	Headroom string `json:"headroom"`
	// fits is true when used is at most total.
	Fits bool `json:"fits"`
	// rows are per component, models first.
	// +listType=atomic
	Rows []MemoryRow `json:"rows"`
}

// MemoryRow is one component of the budget, in bytes rendered as quantities.
type MemoryRow struct {
	// component is what the row counts: a model variant, qdrant, or a declared overhead.
	Component string `json:"component"`
	// weights is the model's weights (models only).
	// +optional
	Weights string `json:"weights,omitempty"`
	// kvCache is the model's KV cache at its context length and slots (models only).
	// +optional
	KVCache string `json:"kvCache,omitempty"`
	// total is the row's sum.
	Total string `json:"total"`
	// detail shows the arithmetic (e.g. "36 layers × 8 KV heads × 128 × 8192 ctx × 4 slots × q8_0").
	// +optional
	Detail string `json:"detail,omitempty"`
	// source is where the figures come from: ollama-show, declared, builtin-table, qdrant.
	// +optional
	Source string `json:"source,omitempty"`
}

// Endpoints are in-cluster URLs.
type Endpoints struct {
	// ollama is Ollama's HTTP API (its Service).
	// +optional
	Ollama string `json:"ollama,omitempty"`
	// ollamaServers are the per-pod addresses of a pool of Ollama servers (spec.ollama.replicas
	// above 1), the ones the RAG server balances across.
	// +optional
	// +listType=atomic
	OllamaServers []string `json:"ollamaServers,omitempty"`
	// qdrantGRPC is Qdrant's gRPC API.
	// +optional
	QdrantGRPC string `json:"qdrantGRPC,omitempty"`
	// qdrantHTTP is Qdrant's REST API.
	// +optional
	QdrantHTTP string `json:"qdrantHTTP,omitempty"`
	// ragServer is the RAG server's HTTP API.
	// +optional
	RagServer string `json:"ragServer,omitempty"`
}

// MaxNameLength is the longest appliance name: every child's name (the longest is
// <name>-qdrant-headless) and the StatefulSet's controller-revision-hash label
// (<name>-qdrant-<hash of up to 10 characters>) must fit 63 characters, with room for
// children added later.
const MaxNameLength = 40

// RagAppliance is a local RAG stack: Ollama, Qdrant and the RAG server, tuned as one.
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 40",message="metadata.name must be at most 40 characters: the appliance's children (<name>-qdrant-headless, <name>-rag-server-data, the StatefulSet's revision label) must fit Kubernetes' 63-character limit"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, ending with a letter or digit): it names the appliance's Services"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rag,categories=ragstack
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Ollama",type=string,JSONPath=`.status.conditions[?(@.type=="OllamaReady")].status`
// +kubebuilder:printcolumn:name="Qdrant",type=string,JSONPath=`.status.conditions[?(@.type=="QdrantReady")].status`
// +kubebuilder:printcolumn:name="RAG",type=string,JSONPath=`.status.conditions[?(@.type=="RagServerReady")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RagAppliance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the declared appliance.
	// +kubebuilder:default={}
	// +optional
	Spec RagApplianceSpec `json:"spec,omitempty"`

	// status is what the operator observed.
	// +optional
	Status RagApplianceStatus `json:"status,omitempty"`
}

// RagApplianceList is a list of RagAppliances.
// +kubebuilder:object:root=true
type RagApplianceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RagAppliance `json:"items"`
}

func init() {
	SchemeBuilder.Register(&RagAppliance{}, &RagApplianceList{})
}

package v1alpha1

// Condition types of a RagAppliance. Ready is True only when every other one is.
const (
	// ConditionReady summarises the others.
	ConditionReady = "Ready"
	// ConditionOllamaReady: the Ollama Deployment has an available, up-to-date pod.
	ConditionOllamaReady = "OllamaReady"
	// ConditionQdrantReady: the Qdrant StatefulSet has a ready, up-to-date pod.
	ConditionQdrantReady = "QdrantReady"
	// ConditionRagServerReady: the RAG server Deployment has an available, up-to-date pod.
	ConditionRagServerReady = "RagServerReady"
	// ConditionModelsReady: every declared variant exists on Ollama with its parameters.
	ConditionModelsReady = "ModelsReady"
	// ConditionCollectionReady: the Qdrant collection exists with the declared settings.
	ConditionCollectionReady = "CollectionReady"
	// ConditionModelsResident: every variant is loaded (/api/ps) with its declared context
	// length, as guide §8 expects. Informational: not part of Ready.
	ConditionModelsResident = "ModelsResident"
	// ConditionMemoryBudget: the declared models, KV caches, Qdrant and overheads fit the
	// machine's memory (guide §6). Informational: not part of Ready.
	ConditionMemoryBudget = "MemoryBudget"
	// ConditionOllamaSettings: every declared Ollama setting is honoured by the image's version
	// and none is known to crash it. Informational: not part of Ready.
	ConditionOllamaSettings = "OllamaSettings"
	// ConditionNetworkPolicyReady: the appliance's NetworkPolicies are applied as declared
	// (True with reason Disabled when spec.networkPolicy.enabled is false).
	ConditionNetworkPolicyReady = "NetworkPolicyReady"
	// ConditionSLOMet (informational): the RAG server holds spec.slo over the window.
	ConditionSLOMet = "SLOMet"
	// ConditionDependenciesReady (informational): the RAG server reaches Ollama, Qdrant, its
	// database and its data volume, as its own probes report them.
	ConditionDependenciesReady = "DependenciesReady"
	// ConditionMonitoringReady (informational): the declared PodMonitor is applied.
	ConditionMonitoringReady = "MonitoringReady"
)

// Condition reasons. They are CamelCase, stable, and documented in docs/crd-reference.md.
const (
	// ReasonAvailable: the component's workload is up to date and available.
	ReasonAvailable = "Available"
	// ReasonProgressing: a rollout is under way (new pods not yet available).
	ReasonProgressing = "Progressing"
	// ReasonUnavailable: the workload exists but has no available pod.
	ReasonUnavailable = "Unavailable"
	// ReasonScaledDown: the component is declared with zero replicas.
	ReasonScaledDown = "ScaledDown"
	// ReasonApplyFailed: the operator could not apply a child object; the message says which.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonAllReady: every component condition is True.
	ReasonAllReady = "AllReady"
	// ReasonComponentsNotReady: at least one component condition is not True; the message
	// lists them.
	ReasonComponentsNotReady = "ComponentsNotReady"
	// ReasonWaitingForOllama: models cannot be created until Ollama is available.
	ReasonWaitingForOllama = "WaitingForOllama"
	// ReasonWaitingForQdrant: the collection cannot be created until Qdrant is ready.
	ReasonWaitingForQdrant = "WaitingForQdrant"
	// ReasonModelSyncRunning: model-creation Jobs are running.
	ReasonModelSyncRunning = "ModelSyncRunning"
	// ReasonModelSyncFailed: a model-creation Job failed; the message carries its reason.
	ReasonModelSyncFailed = "ModelSyncFailed"
	// ReasonModelsCreated: every variant exists with its declared parameters.
	ReasonModelsCreated = "ModelsCreated"
	// ReasonCollectionConfigured: the collection exists with the declared settings.
	ReasonCollectionConfigured = "CollectionConfigured"
	// ReasonCollectionConflict: an existing collection's vector size or distance differs
	// from the spec; the operator leaves it untouched.
	ReasonCollectionConflict = "CollectionConflict"
	// ReasonUnreachable: the component's API did not answer; retried with backoff.
	ReasonUnreachable = "Unreachable"
	// ReasonSettingsIgnored: the Ollama version in use ignores some declared settings.
	ReasonSettingsIgnored = "SettingsIgnored"
	// ReasonVerificationFailed: a variant exists but Show reports parameters other than declared.
	ReasonVerificationFailed = "VerificationFailed"
	// ReasonAllResident: every variant is loaded with its declared context length.
	ReasonAllResident = "AllResident"
	// ReasonWarming: some variants are being loaded.
	ReasonWarming = "Warming"
	// ReasonTooManyModels: more variants are declared than spec.ollama.maxLoadedModels allows
	// to be loaded at once.
	ReasonTooManyModels = "TooManyModels"
	// ReasonContextMismatch: a loaded variant runs with another context length than declared.
	ReasonContextMismatch = "ContextMismatch"
	// ReasonLoadFailed: Ollama refused to load a variant (often: not enough memory).
	ReasonLoadFailed = "LoadFailed"
	// ReasonFits / ReasonDoesNotFit: the memory budget's verdict.
	ReasonFits       = "Fits"
	ReasonDoesNotFit = "DoesNotFit"
	// ReasonBudgetIncomplete: some model's size is unknown (not on the server, none declared).
	ReasonBudgetIncomplete = "Incomplete"
	// ReasonSettingsHonoured: the Ollama version in use reads every declared setting.
	ReasonSettingsHonoured = "SettingsHonoured"
	// ReasonMultiuserCacheCrashRisk: multiuserCache is true on an Ollama below 0.30, whose
	// llama.cpp runner aborts (GGML_ASSERT in seq_cp) once two requests for one model run in
	// parallel.
	ReasonMultiuserCacheCrashRisk = "MultiuserCacheCrashRisk"
	// ReasonUnschedulable: a pod of the component cannot be scheduled; the message carries the
	// scheduler's words (e.g. "0/1 nodes are available: 1 Insufficient nvidia.com/gpu").
	ReasonUnschedulable = "Unschedulable"
	// ReasonImagePullFailed: a container image cannot be pulled (ErrImagePull, ImagePullBackOff).
	ReasonImagePullFailed = "ImagePullFailed"
	// ReasonCrashLooping: a container keeps exiting (CrashLoopBackOff); the message carries its
	// last exit and termination message.
	ReasonCrashLooping = "CrashLooping"
	// ReasonContainerConfigError: the kubelet cannot create a container (a missing Secret or
	// ConfigMap key, an invalid reference).
	ReasonContainerConfigError = "ContainerConfigError"
	// ReasonPodRefused: the workload's controller cannot create pods (admission refused them:
	// Pod Security, a quota, a missing PriorityClass or RuntimeClass).
	ReasonPodRefused = "PodRefused"
	// ReasonVolumeExpanding: a volume claim is being grown to the declared size.
	ReasonVolumeExpanding = "VolumeExpanding"
	// ReasonModelSyncBackoff: a model-creation Job ended without the variant ready (failed, or
	// succeeded but the variant is missing or differs); the next Job waits with exponential
	// backoff, and the message says why and when.
	ReasonModelSyncBackoff = "ModelSyncBackoff"
	// ReasonPoliciesApplied: every NetworkPolicy of the appliance is applied.
	ReasonPoliciesApplied = "PoliciesApplied"
	// ReasonSecretMissing: a Secret (or a key in it) the component needs does not exist.
	ReasonSecretMissing = "SecretMissing"
	// ReasonDisabled: the feature is turned off in the spec.
	ReasonDisabled = "Disabled"
	// ReasonShardingDiffers: an existing collection's shard number differs from the declared
	// one; Qdrant fixes it at creation, so the collection is used as it is.
	ReasonShardingDiffers = "ShardingDiffers"
	// ReasonObjectivesMet / ReasonObjectiveMissed: the SLO verdict over the window.
	ReasonObjectivesMet   = "ObjectivesMet"
	ReasonObjectiveMissed = "ObjectiveMissed"
	// ReasonNoSamples: nothing was measured in the window yet (no questions asked).
	ReasonNoSamples = "NoSamples"
	// ReasonDependencyDown / ReasonDependenciesUp: the RAG server's view of its dependencies.
	ReasonDependencyDown = "DependencyDown"
	ReasonDependenciesUp = "DependenciesUp"
	// ReasonPodMonitorApplied: the appliance's PodMonitor is applied.
	ReasonPodMonitorApplied = "PodMonitorApplied"
	// ReasonMetricsUnavailable: the RAG server's metrics could not be read.
	ReasonMetricsUnavailable = "MetricsUnavailable"
)

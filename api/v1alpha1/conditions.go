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
)

package controllers

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/serverconfig"
)

const (
	ragServerUID      = 65532 // distroless nonroot
	ragConfigKey      = "config.json"
	ragConfigDir      = "/etc/rag-server"
	ragConfigPath     = ragConfigDir + "/config/" + ragConfigKey
	ragKeysDir        = "/etc/rag-server/api-keys"
	ragKeysFileKey    = "keys.json"
	ragDataDir        = "/data"
	qdrantAPIKeyDir   = "/etc/rag-server/qdrant"
	qdrantAPIKeyField = "api-key"
	// The read-only key is mounted apart: it may live in another Secret.
	qdrantReadOnlyKeyDir = "/etc/rag-server/qdrant-read-only"
	// The database URI (with its password) is mounted as a file rather than an environment
	// variable, which would show in process listings and crash dumps.
	databaseURIDir   = "/etc/rag-server/database"
	databaseURIField = "uri"
)

// ragServerConfig renders the server's config file from the spec. Everything the server
// needs to know about the appliance is here: limits, model names, budget, addresses.
func ragServerConfig(ra *ragv1.RagAppliance) serverconfig.Config {
	rs := ra.Spec.RagServer
	q := ra.Spec.Qdrant
	cfg := serverconfig.Config{
		Listen:        ":" + itoa(ragServerPort),
		MetricsListen: ":" + itoa(ragServerMetricsPort),
		DataDir:       ragDataDir,
		Ollama: serverconfig.Ollama{
			URL:       serviceURL(ra, ollamaName(ra), ollamaPort),
			KeepAlive: string(ra.Spec.Ollama.KeepAlive),
		},
		Qdrant: serverconfig.Qdrant{
			Address: qdrantName(ra) + "." + ra.Namespace + ".svc:" + itoa(qdrantGRPCPort),
			Collection: serverconfig.Collection{
				Name:       q.Collection.Name,
				VectorSize: int(q.Collection.VectorSize),
				Distance:   string(q.Collection.Distance),
			},
		},
		Models: serverconfig.Models{
			Chat: rs.Models.Chat, Embedding: rs.Models.Embedding, Summary: rs.Models.Summary, Tagging: rs.Models.Tagging,
		},
		Limits: serverconfig.Limits{
			// Replicas share one Ollama: the totals the spec declares are divided among them.
			EmbedConcurrency:            max(1, perReplica(rs.Concurrency.EmbedConcurrency, rs.Replicas)),
			EmbedBatchSize:              int(rs.Concurrency.EmbedBatchSize),
			MaxConcurrentProcessing:     int(rs.Concurrency.MaxConcurrentProcessing),
			JobWorkers:                  int(rs.Concurrency.JobWorkers),
			RagTimeout:                  string(rs.Concurrency.RagTimeout),
			WarmingMaxConcurrentQueries: perReplica(rs.Concurrency.WarmingMaxConcurrentQueries, rs.Replicas),
			MaxQueuedDocuments:          int(rs.Concurrency.MaxQueuedDocuments),
		},
		Tokens: serverconfig.Tokens{
			Context: int(rs.Tokens.Context), History: int(rs.Tokens.History),
			System: int(rs.Tokens.System), Response: int(rs.Tokens.Response),
			NumCtx: chatNumCtx(ra),
		},
		Chunk: serverconfig.Chunk{Size: int(rs.Chunking.Size), Overlap: int(rs.Chunking.Overlap)},
		Search: serverconfig.Search{
			TopK:                 int(rs.Retrieval.TopK),
			MaxChunksPerDocument: int(rs.Retrieval.MaxChunksPerDocument),
			DocumentTitles:       rs.Retrieval.DocumentTitles,
			HNSWEf:               int(q.Search.HNSWEf),
		},
		Uploads: serverconfig.Uploads{
			MaxFilesPerRequest: int(rs.Uploads.MaxFilesPerRequest),
			AllowedTypes:       append([]string(nil), rs.Uploads.AllowedTypes...),
		},
		Auth: serverconfig.Auth{KeysFile: ragKeysDir + "/" + ragKeysFileKey},
	}
	if rs.Retrieval.ScoreThreshold != nil {
		cfg.Search.ScoreThreshold = rs.Retrieval.ScoreThreshold.Float64()
	}
	if rs.Uploads.MaxFileSize != nil {
		cfg.Uploads.MaxFileBytes = rs.Uploads.MaxFileSize.Value()
	}
	// The server measures and holds the objective; the operator reads the figures back.
	cfg.SLO = serverconfig.SLO{
		ChatTTFTP95: string(ra.Spec.SLO.ChatTTFTP95),
		HealthzP99:  string(ra.Spec.SLO.HealthzP99),
		Window:      string(ra.Spec.SLO.Window),
	}
	if ragServerShared(ra) {
		cfg.Database = serverconfig.Database{Driver: serverconfig.DriverPostgres, URIFile: databaseURIDir + "/" + databaseURIField}
	}
	if ollamaPooled(ra) {
		// The server balances across the pool's pods (each named through the headless Service).
		cfg.Ollama.URLs = ollamaServerURLs(ra)
	}
	cfg.Qdrant.APIKeyFile = qdrantAPIKeyDir + "/" + qdrantAPIKeyField
	if _, ro := qdrantKeyRefs(ra); ro != nil {
		cfg.Qdrant.ReadOnlyAPIKeyFile = qdrantReadOnlyKeyDir + "/" + qdrantReadOnlyKeyField
	}
	return cfg
}

// perReplica is one replica's share of a limit the spec declares for the whole server,
// rounded down so the replicas together never exceed it: warmingMaxConcurrentQueries stays
// below numParallel in sum, keeping a chat slot free. Admission refuses a non-zero warming
// limit smaller than the replica count, which would round to no background work at all.
func perReplica(total, replicas int32) int {
	if replicas <= 1 {
		return int(total)
	}
	return int(total / replicas)
}

// ragServerShared is true when the server's state lives in PostgreSQL, so that replicas share
// it and no data volume is needed (uploads are spooled to an emptyDir before they are stored).
func ragServerShared(ra *ragv1.RagAppliance) bool {
	return ra.Spec.RagServer.Database.Type == ragv1.DatabasePostgres
}

// chatNumCtx is the chat variant's context window (0 if the variant is missing, which
// admission refuses).
func chatNumCtx(ra *ragv1.RagAppliance) int {
	for _, m := range ra.Spec.Models {
		if m.Name == ra.Spec.RagServer.Models.Chat {
			return int(m.Parameters.NumCtx)
		}
	}
	return 0
}

func ragServerConfigMap(ra *ragv1.RagAppliance) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   typeMeta("v1", "ConfigMap"),
		ObjectMeta: objectMeta(ra, ragServerName(ra), componentRagServer),
		Data:       map[string]string{ragConfigKey: string(ragServerConfig(ra).Marshal())},
	}
}

// ragServerEnv is guide §3 where it applies to the RAG server pod: OpenMP and PyTorch settings
// for parser add-ons. MALLOC_ARENA_MAX is left out: the server is a static Go binary.
func ragServerEnv(ra *ragv1.RagAppliance) []corev1.EnvVar {
	rt := ra.Spec.Runtime
	var env []corev1.EnvVar
	if rt.OMPNumThreads > 0 {
		env = append(env, corev1.EnvVar{Name: "OMP_NUM_THREADS", Value: itoa(int(rt.OMPNumThreads))})
	}
	if rt.OMPSchedule != "" {
		env = append(env, corev1.EnvVar{Name: "OMP_SCHEDULE", Value: rt.OMPSchedule})
	}
	if rt.PytorchCUDAAllocConf != "" {
		env = append(env, corev1.EnvVar{Name: "PYTORCH_CUDA_ALLOC_CONF", Value: rt.PytorchCUDAAllocConf})
	}
	// The config is mounted as a directory: subPath mounts never see ConfigMap updates.
	env = append(env, corev1.EnvVar{Name: "RAG_CONFIG", Value: ragConfigPath})
	return env
}

func ragServerDeployment(ra *ragv1.RagAppliance) *appsv1.Deployment {
	rs := ra.Spec.RagServer
	env := ragServerEnv(ra)
	config := ragServerConfig(ra).Marshal()
	volumes := []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ragServerName(ra)},
		}}},
		{Name: "api-keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: apiKeysSecretName(ra)}}},
		ragServerDataVolume(ra),
		emptyDir("tmp"),
	}
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: ragConfigDir + "/config", ReadOnly: true},
		{Name: "api-keys", MountPath: ragKeysDir, ReadOnly: true},
		{Name: "data", MountPath: ragDataDir},
		{Name: "tmp", MountPath: "/tmp"},
	}
	if ref := ra.Spec.RagServer.Database.URISecretRef; ragServerShared(ra) && ref != nil {
		volumes = append(volumes, corev1.Volume{Name: "database", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: ref.Name, Items: []corev1.KeyToPath{{Key: ref.Key, Path: databaseURIField}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "database", MountPath: databaseURIDir, ReadOnly: true})
	}
	key, readOnly := qdrantKeyRefs(ra)
	volumes = append(volumes, corev1.Volume{Name: "qdrant-api-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: key.Name, Items: []corev1.KeyToPath{{Key: key.Key, Path: qdrantAPIKeyField}},
	}}})
	mounts = append(mounts, corev1.VolumeMount{Name: "qdrant-api-key", MountPath: qdrantAPIKeyDir, ReadOnly: true})
	if readOnly != nil {
		volumes = append(volumes, corev1.Volume{Name: "qdrant-read-only-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: readOnly.Name, Items: []corev1.KeyToPath{{Key: readOnly.Key, Path: qdrantReadOnlyKeyField}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "qdrant-read-only-key", MountPath: qdrantReadOnlyKeyDir, ReadOnly: true})
	}
	memRequest, memLimit := ragServerMemory(ra)
	resources := withDefaults(rs.Resources, ragServerCPURequest, memRequest, memLimit)
	if lim, ok := resources.Limits[corev1.ResourceMemory]; ok {
		// The Go runtime collects harder near the limit instead of being OOM-killed at it.
		env = append(env, corev1.EnvVar{Name: "GOMEMLIMIT", Value: itoa(int(lim.Value() / 10 * 9))})
		sort.SliceStable(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	}
	// The embedded store lives on a ReadWriteOnce volume: never two pods at once. On
	// PostgreSQL a new pod starts before an old one stops, so answers never pause.
	strategy := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if ragServerShared(ra) {
		strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxUnavailable: ptr.To(intstr.FromInt32(0)),
			MaxSurge:       ptr.To(intstr.FromInt32(1)),
		}}
	}
	dep := &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: objectMeta(ra, ragServerName(ra), componentRagServer),
		Spec: appsv1.DeploymentSpec{
			Replicas:             ptr.To(rs.Replicas),
			Strategy:             strategy,
			Selector:             metav1LabelSelector(selectorLabels(ra, componentRagServer)),
			RevisionHistoryLimit: ptr.To[int32](3),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1ObjectMeta(labels(ra, componentRagServer), map[string]string{
					ConfigHashAnnotation: hashOf(config, envBytes(env)),
				}),
				Spec: corev1.PodSpec{
					SecurityContext:               restrictedPod(ragServerUID),
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](30),
					// PDFium is compiled to machine code into the data volume's cache before the
					// server starts: the compile holds ~300 MiB for seconds (a fraction of a second
					// and ~40 MiB when the cache is already there), and in the server that memory
					// would stay resident long after.
					InitContainers: []corev1.Container{{
						Name:                     "pdf-engine",
						Image:                    rs.Image,
						Args:                     []string{"pdf-engine-compile", "--data-dir", ragDataDir},
						Env:                      env,
						Resources:                resources,
						SecurityContext:          restrictedContainer(),
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						VolumeMounts:             []corev1.VolumeMount{{Name: "data", MountPath: ragDataDir}, {Name: "tmp", MountPath: "/tmp"}},
					}},
					Containers: []corev1.Container{{
						Name:  "rag-server",
						Image: rs.Image,
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: ragServerPort, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: ragServerMetricsPort, Protocol: corev1.ProtocolTCP},
						},
						Env:             env,
						Resources:       resources,
						SecurityContext: restrictedContainer(),
						// A server that cannot start (an unreachable database, a refused config)
						// says why on stderr; the log's tail becomes the CrashLooping condition.
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						StartupProbe:             httpProbe("/healthz", ragServerPort, 2, 30, 0),
						LivenessProbe:            httpProbe("/healthz", ragServerPort, 10, 3, 0),
						ReadinessProbe:           httpProbe("/readyz", ragServerPort, 5, 3, 0),
						VolumeMounts:             mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
	place(&dep.Spec.Template.Spec, ra, componentRagServer)
	if rs.Replicas > 1 && dep.Spec.Template.Spec.TopologySpreadConstraints == nil {
		// Spread replicas over nodes where there are several; on one Spark they still all run.
		dep.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       corev1.LabelHostname,
			WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector:     metav1LabelSelector(selectorLabels(ra, componentRagServer)),
		}}
	}
	return dep
}

// ragServerDataVolume is the embedded store's claim, or with PostgreSQL an emptyDir that only
// spools uploads in flight (bounded by storage.size).
func ragServerDataVolume(ra *ragv1.RagAppliance) corev1.Volume {
	if !ragServerShared(ra) {
		return corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ragServerDataPVC(ra)}}}
	}
	v := emptyDir("data")
	if size := ra.Spec.RagServer.Storage.Size; size != nil {
		v.EmptyDir.SizeLimit = ptr.To(size.DeepCopy())
	}
	return v
}

// ragServerPDB keeps all but one replica serving through node drains; nil for one replica,
// where a budget would only block drains.
func ragServerPDB(ra *ragv1.RagAppliance) *policyv1.PodDisruptionBudget {
	if ra.Spec.RagServer.Replicas <= 1 {
		return nil
	}
	return podDisruptionBudget(ra, ragServerName(ra), componentRagServer)
}

func ragServerService(ra *ragv1.RagAppliance) *corev1.Service {
	return clusterIPService(ra, ragServerName(ra), componentRagServer,
		corev1.ServicePort{Name: "http", Port: ragServerPort, TargetPort: intstrPort(ragServerPort), Protocol: corev1.ProtocolTCP},
		corev1.ServicePort{Name: "metrics", Port: ragServerMetricsPort, TargetPort: intstrPort(ragServerMetricsPort), Protocol: corev1.ProtocolTCP})
}

// ragServerPVC is the embedded store's volume; nil on PostgreSQL. A claim left from an
// embedded past is not deleted here: spec.retention governs it when the appliance goes.
func ragServerPVC(ra *ragv1.RagAppliance) *corev1.PersistentVolumeClaim {
	if ragServerShared(ra) {
		return nil
	}
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   typeMeta("v1", "PersistentVolumeClaim"),
		ObjectMeta: dataVolumeMeta(ra, ragServerDataPVC(ra), componentRagServer),
		Spec:       pvcSpec(ra.Spec.RagServer.Storage, "20Gi"),
	}
}

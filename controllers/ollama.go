package controllers

import (
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/ollamaversion"
)

const (
	ollamaUID        = 10001
	ollamaModelsPath = "/models"
	ollamaHomePath   = "/home/ollama"
	gpuResource      = corev1.ResourceName("nvidia.com/gpu")
)

// ollamaSettings are the OLLAMA_* server settings of guide §1, rendered to the exact strings
// Ollama's envconfig parses, with the variables the declared version ignores left out and
// named in ignored.
func ollamaSettings(ra *ragv1.RagAppliance, version *ollamaversion.Version) (env []corev1.EnvVar, ignored []string) {
	o := ra.Spec.Ollama
	vars := map[string]string{
		"OLLAMA_HOST":              "0.0.0.0:" + itoa(ollamaPort),
		"OLLAMA_MODELS":            ollamaModelsPath,
		"OLLAMA_NUM_PARALLEL":      itoa(int(o.NumParallel)),
		"OLLAMA_MAX_LOADED_MODELS": itoa(int(o.MaxLoadedModels)),
		"OLLAMA_FLASH_ATTENTION":   boolDigit(o.FlashAttention),
		"OLLAMA_KV_CACHE_TYPE":     string(o.KVCacheType),
		"OLLAMA_MULTIUSER_CACHE":   strconv.FormatBool(o.MultiuserCache),
		"OLLAMA_KEEP_ALIVE":        string(o.KeepAlive),
		"OLLAMA_LOAD_TIMEOUT":      string(o.LoadTimeout),
	}
	if o.GPUOverhead != nil {
		vars["OLLAMA_GPU_OVERHEAD"] = strconv.FormatInt(o.GPUOverhead.Value(), 10)
	}
	if o.MaxQueue != nil {
		vars["OLLAMA_MAX_QUEUE"] = itoa(int(*o.MaxQueue))
	}
	if !o.MultiuserCache {
		// false is Ollama's default: rendering it would only add noise.
		delete(vars, "OLLAMA_MULTIUSER_CACHE")
	}
	for _, name := range sortedKeys(vars) {
		if version != nil && !ollamaversion.Honours(*version, name) {
			ignored = append(ignored, name)
			continue
		}
		env = append(env, corev1.EnvVar{Name: name, Value: vars[name]})
	}
	return env, ignored
}

// ollamaRuntimeEnv is the part of guide §3 that affects Ollama: glibc arenas of its runners and
// the visible GPU. OMP_* is left out: Ollama builds GGML without OpenMP (num_thread pins threads).
func ollamaRuntimeEnv(ra *ragv1.RagAppliance) []corev1.EnvVar {
	rt := ra.Spec.Runtime
	var env []corev1.EnvVar
	if ra.Spec.Ollama.GPUs > 0 && rt.CUDAVisibleDevices != "" {
		env = append(env, corev1.EnvVar{Name: "CUDA_VISIBLE_DEVICES", Value: rt.CUDAVisibleDevices})
	}
	env = append(env, corev1.EnvVar{Name: "HOME", Value: ollamaHomePath})
	if rt.MallocArenaMax > 0 {
		env = append(env, corev1.EnvVar{Name: "MALLOC_ARENA_MAX", Value: itoa(int(rt.MallocArenaMax))})
	}
	return env
}

// ollamaVersion is the version named by the image tag; when the tag names none (latest, a
// digest), the version the running server reported. The tag wins so that changing the image
// renders the new version's settings in one rollout, not two.
func ollamaVersion(ra *ragv1.RagAppliance) *ollamaversion.Version {
	if v, ok := ollamaversion.FromImage(ra.Spec.Ollama.Image); ok {
		return &v
	}
	if v, err := ollamaversion.Parse(ra.Status.OllamaVersion); err == nil {
		return &v
	}
	return nil
}

// ollamaEnv is the container's whole environment: operator-rendered variables sorted by name,
// then the user's extra env in the order given (later entries may refer to earlier ones).
func ollamaEnv(ra *ragv1.RagAppliance) ([]corev1.EnvVar, []string) {
	settings, ignored := ollamaSettings(ra, ollamaVersion(ra))
	env := append(settings, ollamaRuntimeEnv(ra)...)
	sort.SliceStable(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	return append(env, ra.Spec.Ollama.Env...), ignored
}

func ollamaDeployment(ra *ragv1.RagAppliance) *appsv1.Deployment {
	o := ra.Spec.Ollama
	env, _ := ollamaEnv(ra)
	resources := withDefaults(o.Resources, ollamaCPURequest, ollamaMemoryRequest(ra), 0)
	if o.GPUs > 0 {
		gpus := *resource.NewQuantity(int64(o.GPUs), resource.DecimalSI)
		if resources.Limits == nil {
			resources.Limits = corev1.ResourceList{}
		}
		resources.Limits[gpuResource] = gpus
		resources.Requests[gpuResource] = gpus
	}
	podLabels := labels(ra, componentOllama)
	volumes := []corev1.Volume{emptyDir("home"), emptyDir("tmp")}
	if !ollamaPooled(ra) {
		// A pool's model stores come from the StatefulSet's claim template instead.
		volumes = append([]corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ollamaModelsPVC(ra)}}}}, volumes...)
	}
	dep := &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: objectMeta(ra, ollamaName(ra), componentOllama),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			// One GPU and a ReadWriteOnce model store: the old pod must stop before the new starts.
			Strategy:             appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector:             metav1LabelSelector(selectorLabels(ra, componentOllama)),
			RevisionHistoryLimit: ptr.To[int32](3),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1ObjectMeta(podLabels, map[string]string{
					ConfigHashAnnotation: hashOf(envBytes(env)),
				}),
				Spec: corev1.PodSpec{
					SecurityContext:               restrictedPod(ollamaUID),
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](30),
					Containers: []corev1.Container{{
						Name:            "ollama",
						Image:           o.Image,
						Args:            []string{"serve"},
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: ollamaPort, Protocol: corev1.ProtocolTCP}},
						Env:             env,
						Resources:       resources,
						SecurityContext: restrictedContainer(),
						StartupProbe:    httpProbe("/api/version", ollamaPort, 5, 60, 0),
						ReadinessProbe:  httpProbe("/api/version", ollamaPort, 10, 3, 0),
						LivenessProbe:   httpProbe("/api/version", ollamaPort, 20, 6, 0),
						VolumeMounts: []corev1.VolumeMount{
							{Name: "models", MountPath: ollamaModelsPath},
							{Name: "home", MountPath: ollamaHomePath},
							{Name: "tmp", MountPath: "/tmp"},
						},
					}},
					Volumes: volumes,
				},
			},
		},
	}
	if ra.Spec.Monitoring.OllamaExporter {
		dep.Spec.Template.Spec.Containers = append(dep.Spec.Template.Spec.Containers, ollamaExporterContainer(ra))
	}
	place(&dep.Spec.Template.Spec, ra, componentOllama)
	return dep
}

// ollamaPooled is true when Ollama runs as a pool of servers (spec.ollama.replicas > 1).
func ollamaPooled(ra *ragv1.RagAppliance) bool { return ra.Spec.Ollama.Replicas > 1 }

func ollamaHeadless(ra *ragv1.RagAppliance) string { return ra.Name + "-ollama-headless" }

// ollamaServerURLs are the in-cluster addresses of every Ollama server: each pod of a pool
// through the headless Service, else the Service.
func ollamaServerURLs(ra *ragv1.RagAppliance) []string {
	if !ollamaPooled(ra) {
		return []string{serviceURL(ra, ollamaName(ra), ollamaPort)}
	}
	urls := make([]string, ra.Spec.Ollama.Replicas)
	for i := range urls {
		urls[i] = "http://" + ollamaName(ra) + "-" + itoa(i) + "." + ollamaHeadless(ra) + "." + ra.Namespace + ".svc:" + itoa(ollamaPort)
	}
	return urls
}

// ollamaStatefulSet runs a pool of Ollama servers: the Deployment's pod, with a model store per
// pod from a claim template (deleted with the appliance or when scaled in: models can be pulled
// again) and stable names for the RAG server to address each. Pods start in parallel; a model
// store is per pod, so there is no ordering to keep.
func ollamaStatefulSet(ra *ragv1.RagAppliance) *appsv1.StatefulSet {
	dep := ollamaDeployment(ra)
	return &appsv1.StatefulSet{
		TypeMeta:   typeMeta("apps/v1", "StatefulSet"),
		ObjectMeta: dep.ObjectMeta,
		Spec: appsv1.StatefulSetSpec{
			Replicas:             ptr.To(ra.Spec.Ollama.Replicas),
			ServiceName:          ollamaHeadless(ra),
			Selector:             dep.Spec.Selector,
			PodManagementPolicy:  appsv1.ParallelPodManagement,
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			RevisionHistoryLimit: ptr.To[int32](3),
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
			},
			Template: dep.Spec.Template,
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				TypeMeta:   typeMeta("v1", "PersistentVolumeClaim"),
				ObjectMeta: metav1.ObjectMeta{Name: "models", Labels: labels(ra, componentOllama)},
				Spec:       pvcSpec(ra.Spec.Ollama.Storage, "200Gi"),
			}},
		},
	}
}

// ollamaHeadlessService gives each pod of a pool its stable DNS name.
func ollamaHeadlessService(ra *ragv1.RagAppliance) *corev1.Service {
	svc := clusterIPService(ra, ollamaHeadless(ra), componentOllama,
		corev1.ServicePort{Name: "http", Port: ollamaPort, TargetPort: intstrPort(ollamaPort), Protocol: corev1.ProtocolTCP})
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	return svc
}

func ollamaService(ra *ragv1.RagAppliance) *corev1.Service {
	return clusterIPService(ra, ollamaName(ra), componentOllama,
		corev1.ServicePort{Name: "http", Port: ollamaPort, TargetPort: intstrPort(ollamaPort), Protocol: corev1.ProtocolTCP})
}

func ollamaPVC(ra *ragv1.RagAppliance) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   typeMeta("v1", "PersistentVolumeClaim"),
		ObjectMeta: objectMeta(ra, ollamaModelsPVC(ra), componentOllama),
		Spec:       pvcSpec(ra.Spec.Ollama.Storage, "200Gi"),
	}
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

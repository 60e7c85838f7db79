package controllers

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// podSpecs are the pod templates of every workload the operator creates for ra.
func podSpecs(ra *ragv1.RagAppliance) map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{
		componentOllama:    ollamaDeployment(ra).Spec.Template.Spec,
		componentQdrant:    qdrantStatefulSet(ra).Spec.Template.Spec,
		componentRagServer: ragServerDeployment(ra).Spec.Template.Spec,
	}
	for _, m := range ra.Spec.Models {
		out[componentModelSync+"/"+m.Name] = modelJob(ra, m, "img").Spec.Template.Spec
	}
	return out
}

func TestPlacementReachesEveryPodWithOverrides(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_minimal.yaml")
	ra.Spec.Models = []ragv1.ModelVariant{{Name: "e", From: "nomic-embed-text", Role: ragv1.RoleEmbedding, Parameters: ragv1.ModelParameters{NumCtx: 2048}}}
	gpu := corev1.Toleration{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	ra.Spec.Placement = ragv1.Placement{
		PodPlacement: ragv1.PodPlacement{
			NodeSelector:      map[string]string{"kubernetes.io/arch": "arm64"},
			Tolerations:       []corev1.Toleration{gpu},
			PriorityClassName: "rag-appliance",
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
				WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: &metav1.LabelSelector{}}},
		},
		Ollama:    &ragv1.PodPlacement{NodeSelector: map[string]string{"nvidia.com/gpu.present": "true"}, RuntimeClassName: ptr.To("nvidia")},
		ModelJobs: &ragv1.PodPlacement{Tolerations: []corev1.Toleration{}},
	}
	for name, spec := range podSpecs(ra) {
		t.Run(name, func(t *testing.T) {
			if spec.PriorityClassName != "rag-appliance" || len(spec.TopologySpreadConstraints) != 1 {
				t.Errorf("common priority/spread not applied: %q %v", spec.PriorityClassName, spec.TopologySpreadConstraints)
			}
			switch {
			case name == componentOllama:
				if spec.NodeSelector["nvidia.com/gpu.present"] != "true" || spec.NodeSelector["kubernetes.io/arch"] != "" {
					t.Errorf("override nodeSelector must replace the common one: %v", spec.NodeSelector)
				}
				if ptr.Deref(spec.RuntimeClassName, "") != "nvidia" || len(spec.Tolerations) != 1 {
					t.Errorf("runtimeClassName %v, tolerations %v", spec.RuntimeClassName, spec.Tolerations)
				}
			case strings.HasPrefix(name, componentModelSync):
				if len(spec.Tolerations) != 0 || spec.NodeSelector["kubernetes.io/arch"] != "arm64" {
					t.Errorf("model Jobs: tolerations %v (override: none), nodeSelector %v", spec.Tolerations, spec.NodeSelector)
				}
			default:
				if len(spec.Tolerations) != 1 || spec.Tolerations[0] != gpu || spec.RuntimeClassName != nil {
					t.Errorf("tolerations %v runtimeClass %v", spec.Tolerations, spec.RuntimeClassName)
				}
			}
		})
	}
}

// TestNoPodIsBestEffort: with nothing declared every container requests cpu and memory (QoS
// Burstable at least), Ollama's memory request covers the declared models' weights and KV
// caches, and the RAG server has a memory limit with GOMEMLIMIT below it.
func TestNoPodIsBestEffort(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	ra.Spec.Ollama.Resources = corev1.ResourceRequirements{}
	for name, spec := range podSpecs(ra) {
		for _, c := range spec.Containers {
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s/%s is BestEffort: requests %v", name, c.Name, c.Resources.Requests)
			}
		}
	}
	ollama := ollamaDeployment(ra).Spec.Template.Spec.Containers[0].Resources
	// qwen3:8b 5200Mi + deepseek-r1:14b 9Gi + nomic 274Mi of weights, plus KV caches (facts.md).
	if got := ollama.Requests.Memory().Value(); got < 20<<30 || got > 30<<30 {
		t.Errorf("Ollama memory request = %s, want the three models' ~24Gi", ollama.Requests.Memory())
	}
	if _, ok := ollama.Limits[corev1.ResourceMemory]; ok {
		t.Error("Ollama must not get a memory limit: on unified memory the GPU's share counts against it")
	}
	rs := ragServerDeployment(ra).Spec.Template.Spec.Containers[0]
	if rs.Resources.Limits.Memory().IsZero() || rs.Resources.Limits.Memory().Cmp(*rs.Resources.Requests.Memory()) < 0 {
		t.Errorf("RAG server resources %v", rs.Resources)
	}
	if envMap(rs.Env)["GOMEMLIMIT"] == "" {
		t.Error("RAG server without GOMEMLIMIT")
	}
	// A user's explicit requests win.
	ra.Spec.Qdrant.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resourceMust("3Gi")}}
	if got := qdrantStatefulSet(ra).Spec.Template.Spec.Containers[0].Resources.Requests.Memory().String(); got != "3Gi" {
		t.Errorf("declared Qdrant memory request replaced: %s", got)
	}
}

func TestPodProblemsSayWhy(t *testing.T) {
	pending := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "rag-ollama-x"}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}.",
	}}}}
	crash := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "rag-rag-server-y"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name: "rag-server", RestartCount: 5,
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "config: limits.ragTimeout: must be positive"}},
	}}}}
	pull := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "rag-qdrant-0"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name:  "qdrant",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image \"qdrant:nope\""}},
	}}}}
	for _, tc := range []struct {
		pod          corev1.Pod
		reason, want string
	}{
		{pending, ragv1.ReasonUnschedulable, "Unschedulable: 0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}."},
		{crash, ragv1.ReasonCrashLooping, "CrashLoopBackOff (5 restarts); last exit code 2 (Error): config: limits.ragTimeout: must be positive"},
		{pull, ragv1.ReasonImagePullFailed, "ImagePullBackOff: Back-off pulling image \"qdrant:nope\""},
	} {
		st, ok := podsProblem([]corev1.Pod{tc.pod})
		if !ok || st.Reason != tc.reason || !strings.Contains(st.Message, tc.want) {
			t.Errorf("%s: got %v %+v, want reason %s with %q", tc.pod.Name, ok, st, tc.reason, tc.want)
		}
	}
	if _, ok := podsProblem([]corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "fine"}}}); ok {
		t.Error("a pod without problems reported one")
	}
	refused := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "rag-ollama", Generation: 1}, Status: appsv1.DeploymentStatus{
		ObservedGeneration: 1, UpdatedReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate",
			Message: `pods "rag-ollama-abc" is forbidden: violates PodSecurity "restricted:latest"`}},
	}}
	if st := deploymentState(refused, 1); st.Reason != ragv1.ReasonPodRefused || !strings.Contains(st.Message, "PodSecurity") {
		t.Errorf("refused pods: %+v", st)
	}
}

func TestOllamaSettingsState(t *testing.T) {
	for _, tc := range []struct {
		image     string
		multiuser bool
		status    metav1.ConditionStatus
		reason    string
	}{
		{"ollama/ollama:0.24.0", true, metav1.ConditionFalse, ragv1.ReasonMultiuserCacheCrashRisk},
		{"ollama/ollama:0.24.0", false, metav1.ConditionTrue, ragv1.ReasonSettingsHonoured},
		{"ollama/ollama:0.32.15", true, metav1.ConditionFalse, ragv1.ReasonSettingsIgnored},
		{"ollama/ollama:0.32.15", false, metav1.ConditionTrue, ragv1.ReasonSettingsHonoured},
		{"ollama/ollama:latest", true, metav1.ConditionUnknown, ragv1.ReasonMultiuserCacheCrashRisk},
	} {
		ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
		ra.Spec.Ollama.Image, ra.Spec.Ollama.MultiuserCache = tc.image, tc.multiuser
		_, ignored := ollamaEnv(ra)
		st := ollamaSettingsState(ra, ignored)
		if st.Status != tc.status || st.Reason != tc.reason {
			t.Errorf("%s multiuserCache=%v: %+v, want %s/%s", tc.image, tc.multiuser, st, tc.status, tc.reason)
		}
	}
}

func resourceMust(s string) resource.Quantity { return resource.MustParse(s) }

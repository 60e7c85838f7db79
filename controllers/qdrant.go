package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

const (
	qdrantUID         = 1000 // the uid of Qdrant's -unprivileged images
	qdrantStoragePath = "/qdrant/storage"
	// Snapshots live on the data volume (a subPath of the claim), so a restart keeps them.
	qdrantSnapshotsPath = "/qdrant/snapshots"
)

func qdrantEnv(ra *ragv1.RagAppliance) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "QDRANT_INIT_FILE_PATH", Value: "/qdrant/init/.qdrant-initialized"},
		{Name: "QDRANT__SERVICE__GRPC_PORT", Value: itoa(qdrantGRPCPort)},
		{Name: "QDRANT__SERVICE__HTTP_PORT", Value: itoa(qdrantHTTPPort)},
		{Name: "QDRANT__STORAGE__SNAPSHOTS_PATH", Value: qdrantSnapshotsPath},
		{Name: "QDRANT__STORAGE__STORAGE_PATH", Value: qdrantStoragePath},
		{Name: "QDRANT__STORAGE__TEMP_PATH", Value: "/tmp"},
		{Name: "QDRANT__TELEMETRY_DISABLED", Value: "true"},
	}
	if qdrantClustered(ra) {
		env = append(env,
			corev1.EnvVar{Name: "QDRANT__CLUSTER__ENABLED", Value: "true"},
			corev1.EnvVar{Name: "QDRANT__CLUSTER__P2P__PORT", Value: itoa(qdrantP2PPort)},
		)
	}
	key, readOnly := qdrantKeyRefs(ra)
	env = append(env, corev1.EnvVar{Name: "QDRANT__SERVICE__API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: key}})
	if readOnly != nil {
		env = append(env, corev1.EnvVar{Name: "QDRANT__SERVICE__READ_ONLY_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: readOnly}})
	}
	return env
}

// qdrantClustered is true when Qdrant runs in distributed mode (more than one peer).
func qdrantClustered(ra *ragv1.RagAppliance) bool { return ra.Spec.Qdrant.Replicas > 1 }

func qdrantReplicas(ra *ragv1.RagAppliance) int32 { return max(ra.Spec.Qdrant.Replicas, 1) }

// qdrantPeerURI is a peer's stable P2P address through the headless Service; peer may be a
// shell expression.
func qdrantPeerURI(ra *ragv1.RagAppliance, pod string) string {
	return "http://" + pod + "." + qdrantHeadless(ra) + "." + ra.Namespace + ".svc:" + itoa(qdrantP2PPort)
}

// qdrantClusterCommand starts a peer the way Qdrant's own Helm chart does: pod 0 founds the
// cluster, every other pod bootstraps through it, each announcing its stable address. A
// restarted peer finds its state on its volume and rejoins by itself.
func qdrantClusterCommand(ra *ragv1.RagAppliance) []string {
	first := qdrantName(ra) + "-0"
	script := `ordinal="${HOSTNAME##*-}"
if [ "$ordinal" = "0" ]; then
  exec ./entrypoint.sh --uri '` + qdrantPeerURI(ra, first) + `'
fi
exec ./entrypoint.sh --bootstrap '` + qdrantPeerURI(ra, first) + `' --uri "` + qdrantPeerURI(ra, "${HOSTNAME}") + `"`
	return []string{"/bin/sh", "-c", script}
}

func qdrantStatefulSet(ra *ragv1.RagAppliance) *appsv1.StatefulSet {
	q := ra.Spec.Qdrant
	env := qdrantEnv(ra)
	ports := []corev1.ContainerPort{
		{Name: "http", ContainerPort: qdrantHTTPPort, Protocol: corev1.ProtocolTCP},
		{Name: "grpc", ContainerPort: qdrantGRPCPort, Protocol: corev1.ProtocolTCP},
	}
	var command []string
	if qdrantClustered(ra) {
		ports = append(ports, corev1.ContainerPort{Name: "p2p", ContainerPort: qdrantP2PPort, Protocol: corev1.ProtocolTCP})
		command = qdrantClusterCommand(ra)
	}
	sts := &appsv1.StatefulSet{
		TypeMeta:   typeMeta("apps/v1", "StatefulSet"),
		ObjectMeta: objectMeta(ra, qdrantName(ra), componentQdrant),
		Spec: appsv1.StatefulSetSpec{
			Replicas:             ptr.To(qdrantReplicas(ra)),
			ServiceName:          qdrantHeadless(ra),
			Selector:             metav1LabelSelector(selectorLabels(ra, componentQdrant)),
			PodManagementPolicy:  appsv1.OrderedReadyPodManagement,
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			RevisionHistoryLimit: ptr.To[int32](3),
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				// spec.retention decides for Qdrant's claims and the RAG server's volume alike:
				// vectors without the records that name them (or the reverse) are useless.
				WhenDeleted: qdrantClaimsWhenDeleted(ra),
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1ObjectMeta(labels(ra, componentQdrant), map[string]string{
					ConfigHashAnnotation: hashOf(envBytes(env)),
				}),
				Spec: corev1.PodSpec{
					SecurityContext:               restrictedPod(qdrantUID),
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](60),
					Containers: []corev1.Container{{
						Name:            "qdrant",
						Image:           q.Image,
						Command:         command,
						Ports:           ports,
						Env:             env,
						Resources:       withDefaults(q.Resources, qdrantCPURequest, qdrantMemoryRequest(ra), 0),
						SecurityContext: restrictedContainer(),
						StartupProbe:    httpProbe("/readyz", qdrantHTTPPort, 5, 60, 0),
						ReadinessProbe:  httpProbe("/readyz", qdrantHTTPPort, 10, 3, 0),
						LivenessProbe:   httpProbe("/livez", qdrantHTTPPort, 20, 6, 0),
						VolumeMounts: []corev1.VolumeMount{
							{Name: "storage", MountPath: qdrantStoragePath},
							{Name: "storage", MountPath: qdrantSnapshotsPath, SubPath: "snapshots"},
							{Name: "init", MountPath: "/qdrant/init"},
							{Name: "tmp", MountPath: "/tmp"},
						},
					}},
					Volumes: []corev1.Volume{emptyDir("init"), emptyDir("tmp")},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				TypeMeta:   typeMeta("v1", "PersistentVolumeClaim"),
				ObjectMeta: metav1.ObjectMeta{Name: "storage", Labels: labels(ra, componentQdrant)},
				Spec:       pvcSpec(q.Storage, "50Gi"),
			}},
		},
	}
	place(&sts.Spec.Template.Spec, ra, componentQdrant)
	return sts
}

func qdrantService(ra *ragv1.RagAppliance) *corev1.Service {
	return clusterIPService(ra, qdrantName(ra), componentQdrant, qdrantPorts()...)
}

// qdrantHeadlessService gives each StatefulSet pod its stable DNS name (the peers' addresses
// in distributed mode; not-ready pods are published so a joining peer can be reached).
func qdrantHeadlessService(ra *ragv1.RagAppliance) *corev1.Service {
	ports := qdrantPorts()
	if qdrantClustered(ra) {
		ports = append(ports, corev1.ServicePort{Name: "p2p", Port: qdrantP2PPort, TargetPort: intstrPort(qdrantP2PPort), Protocol: corev1.ProtocolTCP})
	}
	svc := clusterIPService(ra, qdrantHeadless(ra), componentQdrant, ports...)
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	svc.Spec.PublishNotReadyAddresses = true
	return svc
}

func qdrantPorts() []corev1.ServicePort {
	return []corev1.ServicePort{
		{Name: "http", Port: qdrantHTTPPort, TargetPort: intstrPort(qdrantHTTPPort), Protocol: corev1.ProtocolTCP},
		{Name: "grpc", Port: qdrantGRPCPort, TargetPort: intstrPort(qdrantGRPCPort), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c")},
	}
}

// qdrantPDB keeps all but one Qdrant peer up through voluntary disruptions (node drains) in
// distributed mode; nil with one peer, where a PodDisruptionBudget would only block drains.
func qdrantPDB(ra *ragv1.RagAppliance) *policyv1.PodDisruptionBudget {
	if !qdrantClustered(ra) {
		return nil
	}
	return podDisruptionBudget(ra, qdrantName(ra), componentQdrant)
}

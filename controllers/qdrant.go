package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
	key, readOnly := qdrantKeyRefs(ra)
	env = append(env, corev1.EnvVar{Name: "QDRANT__SERVICE__API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: key}})
	if readOnly != nil {
		env = append(env, corev1.EnvVar{Name: "QDRANT__SERVICE__READ_ONLY_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: readOnly}})
	}
	return env
}

func qdrantStatefulSet(ra *ragv1.RagAppliance) *appsv1.StatefulSet {
	q := ra.Spec.Qdrant
	env := qdrantEnv(ra)
	sts := &appsv1.StatefulSet{
		TypeMeta:   typeMeta("apps/v1", "StatefulSet"),
		ObjectMeta: objectMeta(ra, qdrantName(ra), componentQdrant),
		Spec: appsv1.StatefulSetSpec{
			Replicas:             ptr.To[int32](1),
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
						Name:  "qdrant",
						Image: q.Image,
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: qdrantHTTPPort, Protocol: corev1.ProtocolTCP},
							{Name: "grpc", ContainerPort: qdrantGRPCPort, Protocol: corev1.ProtocolTCP},
						},
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

// qdrantHeadlessService gives the StatefulSet pod its stable DNS name.
func qdrantHeadlessService(ra *ragv1.RagAppliance) *corev1.Service {
	svc := clusterIPService(ra, qdrantHeadless(ra), componentQdrant, qdrantPorts()...)
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

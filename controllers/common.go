package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

func itoa(i int) string { return strconv.Itoa(i) }

// hashOf is a short, stable hash of rendered bytes.
func hashOf(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// objectMeta is the metadata every child carries: name, namespace, labels and a controller
// owner reference to the appliance (so deleting it collects the child).
func objectMeta(ra *ragv1.RagAppliance, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: ra.Namespace,
		Labels:    labels(ra, component),
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion:         ragv1.GroupVersion.String(),
			Kind:               "RagAppliance",
			Name:               ra.Name,
			UID:                ra.UID,
			Controller:         ptr.To(true),
			BlockOwnerDeletion: ptr.To(true),
		}},
	}
}

// dataVolumeMeta is the metadata of a volume holding the appliance's data: owned (collected
// with the appliance) only under spec.retention Delete.
func dataVolumeMeta(ra *ragv1.RagAppliance, name, component string) metav1.ObjectMeta {
	m := objectMeta(ra, name, component)
	if ra.Spec.Retention != ragv1.RetentionDelete {
		m.OwnerReferences = nil
	}
	return m
}

func qdrantClaimsWhenDeleted(ra *ragv1.RagAppliance) appsv1.PersistentVolumeClaimRetentionPolicyType {
	if ra.Spec.Retention == ragv1.RetentionDelete {
		return appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	}
	return appsv1.RetainPersistentVolumeClaimRetentionPolicyType
}

// restrictedContainer is the restricted Pod Security Standard for a container.
func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// restrictedPod runs the pod as uid/gid with fsGroup so volumes are writable by it.
func restrictedPod(uid int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:        ptr.To(true),
		RunAsUser:           ptr.To(uid),
		RunAsGroup:          ptr.To(uid),
		FSGroup:             ptr.To(uid),
		FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
		SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func pvcSpec(s ragv1.StorageSpec, fallback string) corev1.PersistentVolumeClaimSpec {
	size := resource.MustParse(fallback)
	if s.Size != nil {
		size = *s.Size
	}
	return corev1.PersistentVolumeClaimSpec{
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		StorageClassName: s.StorageClassName,
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
	}
}

func emptyDir(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

func httpProbe(path string, port int, period, failures int32, initial int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstrPort(port), Scheme: corev1.URISchemeHTTP,
		}},
		InitialDelaySeconds: initial,
		PeriodSeconds:       period,
		TimeoutSeconds:      5,
		FailureThreshold:    failures,
		SuccessThreshold:    1,
	}
}

func intstrPort(port int) intstr.IntOrString { return intstr.FromInt32(int32(port)) }

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func metav1LabelSelector(l map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: l}
}

func metav1ObjectMeta(l, annotations map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Labels: l, Annotations: annotations}
}

func clusterIPService(ra *ragv1.RagAppliance, name, component string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(ra, name, component),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selectorLabels(ra, component),
			Ports:    ports,
		},
	}
}

// sortedKeys returns a map's keys in order: env and args are never built by ranging a map.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// envBytes is a stable serialisation of an env list for hashing.
func envBytes(env []corev1.EnvVar) []byte {
	var b []byte
	for _, e := range env {
		b = append(b, e.Name...)
		b = append(b, '=')
		b = append(b, e.Value...)
		if e.ValueFrom != nil {
			b = append(b, e.ValueFrom.String()...)
		}
		b = append(b, '\n')
	}
	return b
}

// objectMetaWithLabels is objectMeta with a caller's label set.
func objectMetaWithLabels(ra *ragv1.RagAppliance, name string, l map[string]string) metav1.ObjectMeta {
	m := objectMeta(ra, name, "")
	m.Labels = l
	return m
}

func joinErrs(errs []error) error { return errors.Join(errs...) }

// podDisruptionBudget lets voluntary disruptions take one of the component's pods at a time.
func podDisruptionBudget(ra *ragv1.RagAppliance, name, component string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   typeMeta("policy/v1", "PodDisruptionBudget"),
		ObjectMeta: objectMeta(ra, name, component),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       metav1LabelSelector(selectorLabels(ra, component)),
		},
	}
}

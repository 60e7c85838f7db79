package cluster

import (
	"context"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AdmissionPlugins are enabled on the test bed's kube-apiserver on top of its default set:
//   - OwnerReferencesPermissionEnforcement (on in OpenShift and hardened clusters): setting
//     blockOwnerDeletion on an owner reference needs `update` on the owner's finalizers
//     subresource, and changing an object's owner references needs `delete` on the object;
//   - PodSecurity (on by default, named so a changed default cannot turn it off): namespaces
//     labelled pod-security.kubernetes.io/enforce refuse pods that break their level.
//
// envtest's --disable-admission-plugins=ServiceAccount stays: no token volume is injected into
// pods, which never run here (the manager authenticates with a TokenRequest token instead).
var AdmissionPlugins = []string{"OwnerReferencesPermissionEnforcement", "PodSecurity"}

// StrictAPIServer configures env's kube-apiserver with AdmissionPlugins; call it before
// env.Start. Start uses it for the cluster; an envtest suite can use it for its own control
// plane. (A client in system:masters passes OwnerReferencesPermissionEnforcement: it may set
// finalizers on anything. It bites for identities bound by RBAC, such as the chart's
// ServiceAccount.)
func StrictAPIServer(env *envtest.Environment) {
	env.ControlPlane.GetAPIServer().Configure().Set("enable-admission-plugins", strings.Join(AdmissionPlugins, ","))
}

// Pod Security Standards labels of a namespace.
const (
	PodSecurityEnforce = "pod-security.kubernetes.io/enforce"
	PodSecurityWarn    = "pod-security.kubernetes.io/warn"
	PodSecurityAudit   = "pod-security.kubernetes.io/audit"
	// PodSecurityRestricted is the strictest level: non-root, no privilege escalation, every
	// capability dropped, the RuntimeDefault seccomp profile, no host namespaces or paths.
	PodSecurityRestricted = "restricted"
)

// RestrictedLabels enforce, warn about and audit the restricted Pod Security level (latest
// version), as a hardened cluster labels the namespaces of its workloads.
func RestrictedLabels() map[string]string {
	return map[string]string{
		PodSecurityEnforce:              PodSecurityRestricted,
		PodSecurityEnforce + "-version": "latest",
		PodSecurityWarn:                 PodSecurityRestricted,
		PodSecurityWarn + "-version":    "latest",
		PodSecurityAudit:                PodSecurityRestricted,
		PodSecurityAudit + "-version":   "latest",
	}
}

// CreateRestrictedNamespace creates the namespace with RestrictedLabels; an existing namespace
// gets the labels added.
func (c *Cluster) CreateRestrictedNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: RestrictedLabels()}}
	err := c.client.Create(ctx, ns)
	if apierrors.IsAlreadyExists(err) {
		live := &corev1.Namespace{}
		if err := c.client.Get(ctx, client.ObjectKey{Name: name}, live); err != nil {
			return err
		}
		patch := client.MergeFrom(live.DeepCopy())
		if live.Labels == nil {
			live.Labels = map[string]string{}
		}
		maps.Copy(live.Labels, RestrictedLabels())
		err = c.client.Patch(ctx, live, patch)
	}
	if err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	return nil
}

package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// SecretHashAnnotation on a pod template carries a hash of the Secret values the pod reads
// (Qdrant's keys), so rotating a key rolls the pods that hold it; the Secret's name alone would not.
const SecretHashAnnotation = "rag.ragstack.dev/secret-hash"

func randomKey() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// generatedQdrantKeys is the Secret with a random API key and read-only key for Qdrant.
func generatedQdrantKeys(ra *ragv1.RagAppliance) (*corev1.Secret, error) {
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	readOnly, err := randomKey()
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(ra, generatedQdrantKeysSecret(ra), componentQdrant),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{qdrantKeyField: []byte(key), qdrantReadOnlyKeyField: []byte(readOnly)},
	}, nil
}

// qdrantKeys makes sure Qdrant's keys exist (creating the generated Secret once when the spec
// names none: created, never applied, so a key handed out does not change) and returns the API
// key, for the operator's own client, and a hash of every key value, for the pod templates.
func (r *RagApplianceReconciler) qdrantKeys(ctx context.Context, ra *ragv1.RagAppliance) (key, hash string, err error) {
	keyRef, readOnlyRef := qdrantKeyRefs(ra)
	if ra.Spec.Qdrant.APIKeySecretRef == nil {
		existing := &corev1.Secret{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ra.Namespace, Name: keyRef.Name}, existing)
		switch {
		case apierrors.IsNotFound(err):
			secret, err := generatedQdrantKeys(ra)
			if err != nil {
				return "", "", err
			}
			if err := r.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
				return "", "", fmt.Errorf("create Secret %s: %w", secret.Name, err)
			}
			r.event(ra, corev1.EventTypeNormal, "QdrantKeyGenerated", "Create", "Generated Qdrant API keys in Secret "+secret.Name)
		case err != nil:
			return "", "", err
		}
	}
	var parts [][]byte
	for _, ref := range []*corev1.SecretKeySelector{keyRef, readOnlyRef} {
		if ref == nil {
			continue
		}
		value, err := r.secretValue(ctx, ra.Namespace, ref, "Qdrant API key")
		if err != nil {
			return "", "", err
		}
		if ref == keyRef {
			key = value
		}
		parts = append(parts, []byte(ref.Name+"/"+ref.Key+"="+value))
	}
	return key, hashOf(parts...), nil
}

// secretValue reads one key of a Secret by name (never cached); what says what the value is for
// in the error.
func (r *RagApplianceReconciler) secretValue(ctx context.Context, namespace string, ref *corev1.SecretKeySelector, what string) (string, error) {
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, secret); err != nil {
		return "", fmt.Errorf("Secret %s (%s): %w", ref.Name, what, err)
	}
	v, ok := secret.Data[ref.Key]
	if !ok || len(strings.TrimSpace(string(v))) == 0 {
		return "", fmt.Errorf("Secret %s has no value under key %q (%s)", ref.Name, ref.Key, what)
	}
	return strings.TrimSpace(string(v)), nil
}

// withSecretHash stamps the keys' hash on a pod template.
func withSecretHash(t *corev1.PodTemplateSpec, hash string) {
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	t.Annotations[SecretHashAnnotation] = hash
}

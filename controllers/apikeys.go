package controllers

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// apiKeyRecord is one entry of the keys file the RAG server reads (internal/auth).
type apiKeyRecord struct {
	Name  string   `json:"name"`
	Token string   `json:"token"`
	Role  string   `json:"role"`
	Tags  []string `json:"tags,omitempty"`
}

// generatedAPIKeysSecret is a Secret holding one random admin key.
func generatedAPIKeysSecret(ra *ragv1.RagAppliance) (*corev1.Secret, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	token := "rag_" + base64.RawURLEncoding.EncodeToString(buf)
	keys, err := json.MarshalIndent([]apiKeyRecord{{Name: "admin", Token: token, Role: "admin"}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(ra, generatedKeysSecret(ra), componentRagServer),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			ragKeysFileKey: keys,
			// The admin token alone, for `kubectl get secret … -o jsonpath` in scripts.
			"admin-token": []byte(token),
		},
	}, nil
}

func joinNames(names []string) string { return strings.Join(names, ", ") }

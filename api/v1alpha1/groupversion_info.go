// Package v1alpha1 contains the RagAppliance API, group rag.ragstack.dev.
// +kubebuilder:object:generate=true
// +groupName=rag.ragstack.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the RagAppliance API.
	GroupVersion = schema.GroupVersion{Group: "rag.ragstack.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API types with a runtime scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

package controllers

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// TestEveryChildNameFitsTheLongestAllowedName: with a name of MaxNameLength characters every
// child is a valid DNS-1035 label (Services) and the StatefulSet's controller-revision-hash
// label (<statefulset>-<hash of up to 10 characters>) fits 63 characters.
func TestEveryChildNameFitsTheLongestAllowedName(t *testing.T) {
	ra := loadSample(t, "rag_v1alpha1_ragappliance_dgx_spark.yaml")
	ra.Name = "a" + strings.Repeat("z", ragv1.MaxNameLength-1)
	for _, name := range []string{ollamaName(ra), ollamaModelsPVC(ra), qdrantName(ra), qdrantHeadless(ra),
		ragServerName(ra), ragServerDataPVC(ra), generatedKeysSecret(ra)} {
		if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs)
		}
	}
	revisionLabel := qdrantName(ra) + "-" + strings.Repeat("h", 10)
	if errs := validation.IsValidLabelValue(revisionLabel); len(errs) > 0 {
		t.Errorf("controller-revision-hash %s: %v", revisionLabel, errs)
	}
	pod := qdrantName(ra) + "-0"
	if errs := validation.IsValidLabelValue(pod); len(errs) > 0 {
		t.Errorf("statefulset.kubernetes.io/pod-name %s: %v", pod, errs)
	}
	for _, m := range ra.Spec.Models {
		job := modelJob(ra, m, "img")
		if errs := validation.IsDNS1123Label(job.Name); len(errs) > 0 {
			t.Errorf("Job %s: %v", job.Name, errs)
		}
	}
}

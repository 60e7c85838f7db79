package controllers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// TestModelJobNeverHotLoops: a Job that completes while Ollama still lacks the variant (here
// Ollama never shows it) does not start the next Job at once: the appliance says
// ModelSyncBackoff with the reason and the time of the next attempt, and the wait doubles.
func TestModelJobNeverHotLoops(t *testing.T) {
	needEnv(t)
	ollama := fakeOllamaVersion(t, "0.24.0") // lists no models, shows none (404)
	testExternal.SetEndpoints(ollama, "")
	t.Cleanup(func() { testExternal.SetEndpoints("", "") })

	ns := newNamespace(t)
	u, err := createManifest(ns, manifest("backoff", "models:\n- {name: embed-rag, from: nomic-embed-text, role: embedding, parameters: {numCtx: 2048}}\nragServer: {models: {chat: embed-rag, embedding: embed-rag, summary: embed-rag, tagging: embed-rag}}"))
	if err == nil {
		t.Fatal("an embedding variant as chat model must be refused") // guards the manifest below
	}
	u, err = createManifest(ns, manifest("backoff", "models:\n- {name: chat-rag, from: 'qwen3:8b', role: chat, parameters: {numCtx: 8192}}\n- {name: embed-rag, from: nomic-embed-text, role: embedding, parameters: {numCtx: 2048}}\nragServer: {models: {chat: chat-rag, embedding: embed-rag, summary: chat-rag, tagging: chat-rag}}"))
	if err != nil {
		t.Fatal(err)
	}
	ra := &ragv1.RagAppliance{}
	_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: u.GetName()}, ra)
	children := waitForChildren(t, ra)
	markAvailable(t, children["ollama Deployment"])

	// completeAll waits for two Jobs none of which is in old, and marks them succeeded.
	completeAll := func(old map[types.UID]bool) map[types.UID]bool {
		uids := map[types.UID]bool{}
		eventually(t, settle, func() error {
			jobs := modelJobs(t, ra)
			clear(uids)
			for _, j := range jobs {
				if !old[j.UID] {
					uids[j.UID] = true
				}
			}
			if len(jobs) != 2 || len(uids) != 2 {
				return fmt.Errorf("%d model Jobs, %d new", len(jobs), len(uids))
			}
			return nil
		})
		for _, j := range modelJobs(t, ra) {
			setJobOutcome(t, j, nil) // "succeeded", yet Ollama has no such model
		}
		return uids
	}
	first := completeAll(nil)
	got := waitForStatus(t, ra, conditionIs(ragv1.ConditionModelsReady, metav1.ConditionFalse, ragv1.ReasonModelSyncBackoff))
	msg := meta.FindStatusCondition(got.Status.Conditions, ragv1.ConditionModelsReady).Message
	if !strings.Contains(msg, "completed but") || !strings.Contains(msg, "next attempt (2) not before") {
		t.Errorf("condition does not say why and when: %s", msg)
	}

	// Requeues and watch events keep coming; within the backoff (10 s) no new Job starts.
	time.Sleep(4 * time.Second)
	for _, j := range modelJobs(t, ra) {
		if !first[j.UID] {
			t.Fatalf("a new Job %s started before the backoff ended", j.Name)
		}
	}

	// Past the first wait (10 s after the Job ended): each Job is replaced once, and the next
	// wait doubles.
	completeAll(first)
	got = waitForStatus(t, ra, func(ra *ragv1.RagAppliance) error {
		for _, m := range ra.Status.Models {
			if m.Attempts != 2 || m.RetryAt == nil || !strings.Contains(m.LastError, "next attempt (3)") {
				return fmt.Errorf("%s: attempts %d retryAt %v lastError %q", m.Name, m.Attempts, m.RetryAt, m.LastError)
			}
		}
		return nil
	})
	if m := got.Status.Models[0]; m.RetryAt.Sub(jobEnd(t, ra)) < 20*time.Second-time.Second {
		t.Errorf("second wait %v, want 20 s (doubled)", m.RetryAt.Sub(jobEnd(t, ra)))
	}

	// One ModelSyncStarted event per Job created (4 Jobs: 2 variants × 2 attempts), not more.
	events := &corev1.EventList{}
	eventually(t, settle, func() error {
		if err := k8s.List(context.Background(), events, client.InNamespace(ns)); err != nil {
			return err
		}
		n := 0
		for _, e := range events.Items {
			if e.Reason == "ModelSyncStarted" {
				n++
				if e.Count > 1 || e.Series != nil {
					return fmt.Errorf("event %s merged occurrences (count %d, series %v): one Event per Job", e.Name, e.Count, e.Series)
				}
			}
		}
		if n != 4 {
			return fmt.Errorf("%d ModelSyncStarted events, want 4", n)
		}
		return nil
	})
	_ = http.StatusOK
}

// jobEnd is when the appliance's current model Jobs ended (their Complete condition).
func jobEnd(t *testing.T, ra *ragv1.RagAppliance) time.Time {
	t.Helper()
	var end time.Time
	for _, j := range modelJobs(t, ra) {
		for _, c := range j.Status.Conditions {
			if c.Type == "Complete" && c.LastTransitionTime.After(end) {
				end = c.LastTransitionTime.Time
			}
		}
	}
	return end
}

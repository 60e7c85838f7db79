package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ollama/ollama/api"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
	"github.com/ragstack/rag-operator/internal/modelspec"
	"github.com/ragstack/rag-operator/internal/modelsync"
)

const (
	// attemptAnnotation on a model Job is its attempt number for the variant (1, 2, …).
	attemptAnnotation  = "rag.ragstack.dev/attempt"
	componentModelSync = "model-sync"
	variantLabel       = "rag.ragstack.dev/variant"
	specHashLabel      = "rag.ragstack.dev/spec-hash"
	// modelResync re-checks that every variant still exists (an Ollama restart with a lost
	// model store has no event of its own).
	modelResync = 2 * time.Minute
	// warmingRecheck is how soon residency is checked again while models load.
	warmingRecheck = 15 * time.Second
)

// DefaultModelSyncImage is the operator's own image, which carries `manager model-sync`.
const DefaultModelSyncImage = "ghcr.io/ragstack/rag-operator:v0.1.0"

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// modelJobName is deterministic and carries the variant spec's hash: a changed variant runs a
// new Job, an unchanged one never runs twice. At most 63 characters.
func modelJobName(ra *ragv1.RagAppliance, variant, hash string) string {
	base := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(ra.Name+"-model-"+variant), "-"), "-")
	if len(base) > 52 {
		base = strings.TrimRight(base[:52], "-")
	}
	return base + "-" + hash
}

func variantLabelValue(variant string) string {
	v := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(variant), "-"), "-")
	if len(v) > 63 {
		v = strings.TrimRight(v[:63], "-")
	}
	return v
}

// modelJob is the Job that creates one variant with `manager model-sync`.
func modelJob(ra *ragv1.RagAppliance, m ragv1.ModelVariant, image string) *batchv1.Job {
	v := modelspec.FromSpec(m)
	hash := v.Hash()
	spec, _ := json.Marshal(v)
	l := labels(ra, componentModelSync)
	l[variantLabel] = variantLabelValue(m.Name)
	l[specHashLabel] = hash
	job := &batchv1.Job{
		TypeMeta:   typeMeta("batch/v1", "Job"),
		ObjectMeta: objectMetaWithLabels(ra, modelJobName(ra, m.Name, hash), l),
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](4),
			// A first pull of a 9 GB base on a slow link takes a while; a stuck one must end.
			ActiveDeadlineSeconds: ptr.To[int64](2 * 3600),
			// The operator deletes finished Jobs once it has recorded them; this is the safety
			// net when it is not running.
			TTLSecondsAfterFinished: ptr.To[int32](24 * 3600),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					SecurityContext:              restrictedPod(65532),
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					Containers: []corev1.Container{{
						Name:    "model-sync",
						Image:   image,
						Command: []string{"/manager"},
						Args: []string{"model-sync",
							// Every server of a pool gets the variant (one Job, servers in turn).
							"--ollama=" + strings.Join(ollamaServerURLs(ra), ","),
							"--variant=" + string(spec),
						},
						SecurityContext:          restrictedContainer(),
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
						},
					}},
				},
			},
		},
	}
	place(&job.Spec.Template.Spec, ra, componentModelSync)
	return job
}

// variantState is one variant's outcome of a pass.
type variantState struct {
	status  ragv1.ModelStatus
	running bool
	failed  bool
	backoff bool          // waiting out the backoff after a Job that did not leave the variant ready
	retryIn time.Duration // a failed Job is retried this long from now
}

// reconcileModels makes every variant exist on Ollama as declared, through Jobs, verifies it
// with Show, reports Ollama's version and what it ignores, and checks residency.
func (r *RagApplianceReconciler) reconcileModels(ctx context.Context, s *scope) (subResult, error) {
	ra := s.ra
	if s.ollama.Status != metav1.ConditionTrue {
		setCondition(ra, ragv1.ConditionModelsReady, falseState(ragv1.ReasonWaitingForOllama, "waiting for Ollama to be available"))
		setCondition(ra, ragv1.ConditionModelsResident, falseState(ragv1.ReasonWaitingForOllama, "waiting for Ollama to be available"))
		return subResult{}, r.reconcileBudget(ctx, s, nil)
	}
	if r.External == nil {
		setCondition(ra, ragv1.ConditionModelsReady, unknownState(ragv1.ReasonUnreachable, "the operator runs without access to Ollama's API"))
		return subResult{}, nil
	}
	oc, err := r.External.Ollama(ra)
	versionChanged := false
	if err == nil {
		var version string
		if version, err = oc.Version(ctx); err == nil {
			versionChanged = ra.Status.OllamaVersion != version
			ra.Status.OllamaVersion = version
		}
	}
	var listed *api.ListResponse
	if err == nil {
		listed, err = oc.List(ctx)
	}
	if err != nil {
		msg := "Ollama API: " + err.Error()
		setCondition(ra, ragv1.ConditionModelsReady, falseState(ragv1.ReasonUnreachable, msg))
		setCondition(ra, ragv1.ConditionModelsResident, falseState(ragv1.ReasonUnreachable, msg))
		return subResult{requeueAfter: unreachableBackoff}, r.reconcileBudget(ctx, s, nil)
	}

	previous := map[string]ragv1.ModelStatus{}
	for _, m := range ra.Status.Models {
		previous[m.Name] = m
	}
	wantJobs := map[string]bool{}
	var states []variantState
	var errs []error
	for _, m := range ra.Spec.Models {
		st, jobName, err := r.reconcileVariant(ctx, ra, oc, listed, m, previous[m.Name])
		if jobName != "" {
			wantJobs[jobName] = true
		}
		if err != nil {
			errs = append(errs, err)
		}
		states = append(states, st)
	}
	if err := r.deleteStaleModelJobs(ctx, ra, wantJobs); err != nil {
		errs = append(errs, err)
	}

	// A pool reports each server's copy of every variant (its List answers for all of them).
	var perServer []*api.ListResponse
	pool, pooled := oc.(ollamaPool)
	if pooled {
		if perServer, err = pool.perServer(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	ra.Status.Models = nil
	for _, st := range states {
		if perServer != nil {
			st.status.Servers = pool.serverStatuses(perServer, ollamaServerURLs(ra), st.status.Name)
		}
		ra.Status.Models = append(ra.Status.Models, st.status)
	}
	sort.Slice(ra.Status.Models, func(i, j int) bool { return ra.Status.Models[i].Name < ra.Status.Models[j].Name })
	ready := modelsReadyState(states)
	setCondition(ra, ragv1.ConditionModelsReady, ready)

	out := subResult{requeueAfter: modelResync}
	for _, st := range states {
		if st.retryIn > 0 && st.retryIn < out.requeueAfter {
			out.requeueAfter = st.retryIn
		}
	}
	if versionChanged {
		// The version may change which settings are rendered: render again now.
		out.requeueAfter = time.Second
	}
	if ready.Status == metav1.ConditionTrue {
		if res := r.reconcileResidency(ctx, ra, oc); res.Status != metav1.ConditionTrue && out.requeueAfter > warmingRecheck {
			out.requeueAfter = warmingRecheck
		}
	} else {
		setCondition(ra, ragv1.ConditionModelsResident, falseState(ready.Reason, "variants are not all created yet"))
	}
	if err := r.reconcileBudget(ctx, s, oc); err != nil {
		errs = append(errs, err)
	}
	return out, joinErrs(errs)
}

// reconcileVariant decides, for one variant, between "exists as declared", "run (or wait for)
// its Job" and "its Job failed". Every Job that does not leave the variant ready, and every
// creation, pushes the next attempt out with exponential backoff (status.models[].retryAt), so
// no inconsistency between Ollama and the spec can make Jobs run in a loop.
func (r *RagApplianceReconciler) reconcileVariant(ctx context.Context, ra *ragv1.RagAppliance, oc OllamaAPI, listed *api.ListResponse,
	m ragv1.ModelVariant, prev ragv1.ModelStatus) (variantState, string, error) {
	v := modelspec.FromSpec(m)
	hash := v.Hash()
	st := ragv1.ModelStatus{Name: m.Name, SpecHash: hash}
	if prev.SpecHash == hash {
		st.Attempts, st.RetryAt = prev.Attempts, prev.RetryAt
	}
	digest := listedDigest(listed, m.Name)
	now := time.Now()

	// Created earlier from this very spec and still on the server with the same digest.
	if digest != "" && prev.Ready && prev.SpecHash == hash && prev.Digest == digest {
		prev.LastError = ""
		prev.Job = ""
		if prev.RetryAt != nil && !now.Before(prev.RetryAt.Time) {
			// Stable past its backoff window: the next loss starts from a clean slate.
			prev.Attempts, prev.RetryAt = 0, nil
		}
		return variantState{status: prev}, "", nil
	}

	job := modelJob(ra, m, r.modelSyncImage())
	st.Job = job.Name
	live := &batchv1.Job{}
	err := r.Get(ctx, client.ObjectKeyFromObject(job), live)
	switch {
	case apierrors.IsNotFound(err):
		if digest != "" {
			// Already on the server (pre-loaded store, operator restart, or a status this pass
			// read from a cache that lags our last write): verify it rather than run a Job.
			if res, verr := modelsync.Verify(ctx, oc, v); verr == nil {
				st.Ready, st.Digest, st.Parameters, st.Job = true, res.Digest, modelspec.Applied(res.Parameters), ""
				return variantState{status: st}, "", nil
			}
		}
		// A Job that ended without the variant is kept until its retry time (below), so the
		// wait here is only for a variant that vanished soon after a Job created it.
		if prev.Ready && st.RetryAt != nil && now.Before(st.RetryAt.Time) {
			st.Job = ""
			st.LastError = orDefault(prev.LastError, "variant "+m.Name+" is missing from Ollama")
			if !strings.Contains(st.LastError, "next attempt") {
				st.LastError += fmt.Sprintf("; next attempt (%d) not before %s", st.Attempts+1, st.RetryAt.UTC().Format(time.RFC3339))
			}
			return variantState{status: st, failed: true, backoff: true, retryIn: st.RetryAt.Sub(now)}, "", nil
		}
		st.Attempts++
		job.Annotations = map[string]string{attemptAnnotation: strconv.Itoa(int(st.Attempts))}
		if err := r.Create(ctx, job); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Created by an earlier pass whose write the cache has not shown yet.
				return variantState{status: st, running: true}, job.Name, nil
			}
			st.LastError = err.Error()
			return variantState{status: st, failed: true}, job.Name, err
		}
		r.eventAbout(ra, job, corev1.EventTypeNormal, "ModelSyncStarted", "CreateJob", fmt.Sprintf("Creating variant %s from %s (Job %s, attempt %d)", m.Name, m.From, job.Name, st.Attempts))
		return variantState{status: st, running: true}, job.Name, nil
	case err != nil:
		st.LastError = err.Error()
		return variantState{status: st, failed: true}, job.Name, err
	}

	// The Job carries its attempt number: a status read from a cache that lags our last write
	// must not make the backoff forget attempts.
	if n, err := strconv.Atoi(live.Annotations[attemptAnnotation]); err == nil && int32(n) > st.Attempts {
		st.Attempts = int32(n)
	}
	switch jobOutcome(live) {
	case batchv1.JobComplete:
		res, verr := modelsync.Verify(ctx, oc, v)
		if verr != nil {
			// The Job says it created the variant, Ollama disagrees: retry with backoff.
			st.Parameters = modelspec.Applied(res.Parameters)
			retryAt := jobEndedAt(live, batchv1.JobComplete).Add(r.modelSyncBackoff(st.Attempts))
			st.LastError = fmt.Sprintf("Job %s completed but %s; next attempt (%d) not before %s", job.Name, verr.Error(), st.Attempts+1, retryAt.UTC().Format(time.RFC3339))
			st.RetryAt = &metav1.Time{Time: retryAt}
			if wait := retryAt.Sub(now); wait > 0 {
				return variantState{status: st, failed: true, backoff: true, retryIn: wait}, job.Name, nil
			}
			if err := r.deleteJob(ctx, live); err != nil {
				return variantState{status: st, failed: true, backoff: true}, job.Name, err
			}
			return variantState{status: st, failed: true, backoff: true, retryIn: 5 * time.Second}, job.Name, nil
		}
		st.Ready, st.Digest, st.Parameters, st.Job = true, res.Digest, modelspec.Applied(res.Parameters), ""
		// Should the variant vanish again soon, the next Job waits: no create/vanish loop.
		st.RetryAt = &metav1.Time{Time: now.Add(r.modelSyncBackoff(st.Attempts)).Truncate(time.Second)}
		r.eventAbout(ra, live, corev1.EventTypeNormal, ragv1.ReasonModelsCreated, "Verify", fmt.Sprintf("Variant %s created and verified (%s)", m.Name, res.Digest))
		// Recorded: the finished Job is no longer needed.
		if err := r.deleteJob(ctx, live); err != nil {
			return variantState{status: st}, job.Name, err
		}
		return variantState{status: st}, "", nil
	case batchv1.JobFailed:
		// The failed Job stays for its logs until the retry: then it is deleted and the next pass
		// runs a fresh one (the registry may be back). Deleting it earlier retries at once.
		st.LastError = "Job " + job.Name + " failed: " + r.jobFailureReason(ctx, live)
		// The configured wait, doubled for every further failure, up to 6 h.
		wait := r.modelSyncRetryAfter()
		for i := int32(1); i < st.Attempts && wait < 6*time.Hour; i++ {
			wait *= 2
		}
		wait = max(r.modelSyncRetryAfter(), min(wait, 6*time.Hour))
		retryAt := jobEndedAt(live, batchv1.JobFailed).Add(wait)
		st.RetryAt = &metav1.Time{Time: retryAt}
		if wait := retryAt.Sub(now); wait > 0 {
			// The retry time comes from the Job's condition, so the message is the same on every
			// pass (no status churn).
			st.LastError += "; retrying after " + retryAt.UTC().Format(time.RFC3339)
			return variantState{status: st, failed: true, retryIn: wait}, job.Name, nil
		}
		if live.DeletionTimestamp == nil {
			err := r.Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationBackground))
			switch {
			case err == nil:
				r.eventAbout(ra, live, corev1.EventTypeWarning, "ModelSyncRetry", "DeleteJob",
					fmt.Sprintf("Variant %s: retrying after the failure of Job %s (%s)", m.Name, job.Name, st.LastError))
			case !apierrors.IsNotFound(err):
				return variantState{status: st, failed: true}, job.Name, err
			}
		}
		st.LastError += "; retrying now"
		// The Job's deletion wakes the next pass through Owns(); this requeue is the fallback.
		return variantState{status: st, failed: true, retryIn: 5 * time.Second}, job.Name, nil
	default:
		return variantState{status: st, running: true}, job.Name, nil
	}
}

func (r *RagApplianceReconciler) deleteJob(ctx context.Context, j *batchv1.Job) error {
	if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// modelSyncBackoff is the wait after the n-th attempt: 10 s doubling, at most an hour.
func (r *RagApplianceReconciler) modelSyncBackoff(n int32) time.Duration {
	d := modelSyncBackoffBase
	for i := int32(1); i < n && d < modelSyncBackoffMax; i++ {
		d *= 2
	}
	return min(d, modelSyncBackoffMax)
}

const (
	modelSyncBackoffBase = 10 * time.Second
	modelSyncBackoffMax  = time.Hour
)

// jobEndedAt is when the Job got its final condition (its creation when the condition has no time).
func jobEndedAt(j *batchv1.Job, outcome batchv1.JobConditionType) time.Time {
	for _, c := range j.Status.Conditions {
		if c.Type == outcome && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	if j.Status.CompletionTime != nil {
		return j.Status.CompletionTime.Time
	}
	return j.CreationTimestamp.Time
}

func jobOutcome(j *batchv1.Job) batchv1.JobConditionType {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type
		}
	}
	return ""
}

// jobFailureReason prefers what model-sync wrote as its termination message (the real reason)
// over the Job's own condition ("BackoffLimitExceeded").
func (r *RagApplianceReconciler) jobFailureReason(ctx context.Context, j *batchv1.Job) string {
	reason := "unknown"
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed {
			reason = strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	pods := &corev1.PodList{}
	// By the Job's UID: a retried Job has the same name, and the failed one's pods may linger.
	if err := r.APIReader.List(ctx, pods, client.InNamespace(j.Namespace), client.MatchingLabels{"batch.kubernetes.io/controller-uid": string(j.UID)}); err != nil {
		return reason
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.Message != "" {
				return strings.TrimSpace(t.Message)
			}
		}
	}
	return reason
}

func (r *RagApplianceReconciler) deleteStaleModelJobs(ctx context.Context, ra *ragv1.RagAppliance, keep map[string]bool) error {
	jobs := &batchv1.JobList{}
	if err := r.List(ctx, jobs, client.InNamespace(ra.Namespace), client.MatchingLabels(selectorLabels(ra, componentModelSync))); err != nil {
		return err
	}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if keep[j.Name] || !metav1.IsControlledBy(j, ra) {
			continue
		}
		if err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func listedDigest(listed *api.ListResponse, name string) string {
	if listed == nil {
		return ""
	}
	for _, m := range listed.Models {
		if modelsync.SameModel(m.Name, name) || modelsync.SameModel(m.Model, name) {
			return m.Digest
		}
	}
	return ""
}

func modelsReadyState(states []variantState) state {
	var failed, running, ready []string
	backoff := false
	for _, s := range states {
		backoff = backoff || s.backoff
		switch {
		case s.status.Ready:
			ready = append(ready, s.status.Name)
		case s.failed:
			failed = append(failed, s.status.Name+": "+s.status.LastError)
		default:
			running = append(running, s.status.Name)
		}
	}
	switch {
	case len(failed) > 0 && backoff:
		return falseState(ragv1.ReasonModelSyncBackoff, strings.Join(failed, "; "))
	case len(failed) > 0:
		return falseState(ragv1.ReasonModelSyncFailed, strings.Join(failed, "; "))
	case len(running) > 0:
		return falseState(ragv1.ReasonModelSyncRunning, fmt.Sprintf("creating %s (%d of %d ready)", strings.Join(running, ", "), len(ready), len(states)))
	default:
		return trueState(ragv1.ReasonModelsCreated, fmt.Sprintf("%d variants exist with their declared parameters", len(ready)))
	}
}

// DefaultModelSyncRetryAfter is how long a failed model-creation Job is kept (for its logs)
// before the variant is tried again.
const DefaultModelSyncRetryAfter = 10 * time.Minute

func (r *RagApplianceReconciler) modelSyncRetryAfter() time.Duration {
	if r.ModelSyncRetryAfter > 0 {
		return r.ModelSyncRetryAfter
	}
	return DefaultModelSyncRetryAfter
}

func (r *RagApplianceReconciler) modelSyncImage() string {
	if r.ModelSyncImage != "" {
		return r.ModelSyncImage
	}
	return DefaultModelSyncImage
}

// warmer loads variants in the background: a model load can take minutes, and a reconcile
// never waits for one.
type warmer struct {
	mu       sync.Mutex
	inFlight map[string]bool
	lastErr  map[string]string
}

func (w *warmer) start(key string, fn func() error) {
	w.mu.Lock()
	if w.inFlight == nil {
		w.inFlight, w.lastErr = map[string]bool{}, map[string]string{}
	}
	if w.inFlight[key] {
		w.mu.Unlock()
		return
	}
	w.inFlight[key] = true
	w.mu.Unlock()
	go func() {
		err := fn()
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.inFlight, key)
		if err != nil {
			w.lastErr[key] = err.Error()
		} else {
			delete(w.lastErr, key)
		}
	}()
}

func (w *warmer) failure(key string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr[key]
}

// reconcileResidency is guide §8's "ollama ps shows three": every variant loaded with its
// declared context length. Missing ones are warmed with a minimal request carrying keep-alive.
func (r *RagApplianceReconciler) reconcileResidency(ctx context.Context, ra *ragv1.RagAppliance, oc OllamaAPI) state {
	o := ra.Spec.Ollama
	if o.MaxLoadedModels > 0 && int(o.MaxLoadedModels) < len(ra.Spec.Models) {
		st := falseState(ragv1.ReasonTooManyModels, fmt.Sprintf("%d variants are declared but spec.ollama.maxLoadedModels is %d: they cannot all be resident", len(ra.Spec.Models), o.MaxLoadedModels))
		setCondition(ra, ragv1.ConditionModelsResident, st)
		return st
	}
	running, err := oc.ListRunning(ctx)
	if err != nil {
		st := falseState(ragv1.ReasonUnreachable, "Ollama /api/ps: "+err.Error())
		setCondition(ra, ragv1.ConditionModelsResident, st)
		return st
	}
	var mismatched, missing, loadFailed []string
	for i, m := range ra.Spec.Models {
		var found *api.ProcessModelResponse
		for j := range running.Models {
			if modelsync.SameModel(running.Models[j].Name, m.Name) {
				found = &running.Models[j]
			}
		}
		key := string(ra.UID) + "/" + m.Name
		switch {
		case found == nil:
			if msg := r.warm.failure(key); msg != "" {
				loadFailed = append(loadFailed, m.Name+": "+msg)
			} else {
				missing = append(missing, m.Name)
			}
			r.warm.start(key, r.warmFunc(ra, m))
		case found.ContextLength != int(m.Parameters.NumCtx):
			mismatched = append(mismatched, fmt.Sprintf("%s runs with context %d, declared %d", m.Name, found.ContextLength, m.Parameters.NumCtx))
		default:
			for k := range ra.Status.Models {
				if ra.Status.Models[k].Name == m.Name {
					ra.Status.Models[k].Resident = true
				}
			}
		}
		_ = i
	}
	var st state
	switch {
	case len(loadFailed) > 0:
		st = falseState(ragv1.ReasonLoadFailed, strings.Join(loadFailed, "; "))
	case len(mismatched) > 0:
		st = falseState(ragv1.ReasonContextMismatch, strings.Join(mismatched, "; "))
	case len(missing) > 0:
		st = falseState(ragv1.ReasonWarming, "loading "+strings.Join(missing, ", "))
	default:
		st = trueState(ragv1.ReasonAllResident, fmt.Sprintf("%d variants loaded with their declared context lengths", len(ra.Spec.Models)))
	}
	setCondition(ra, ragv1.ConditionModelsResident, st)
	return st
}

// warmFunc loads a variant with the spec's keep-alive: an empty generate for LLMs, an empty
// embed for embedding models (both load without computing anything).
func (r *RagApplianceReconciler) warmFunc(ra *ragv1.RagAppliance, m ragv1.ModelVariant) func() error {
	keepAlive := parseKeepAlive(string(ra.Spec.Ollama.KeepAlive))
	loadTimeout := parseDurationOr(string(ra.Spec.Ollama.LoadTimeout), 10*time.Minute)
	client, err := r.External.OllamaLoader(ra)
	return func() error {
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout+time.Minute)
		defer cancel()
		if m.Role == ragv1.RoleEmbedding {
			_, err := client.Embed(ctx, &api.EmbedRequest{Model: m.Name, KeepAlive: keepAlive})
			return err
		}
		return client.Generate(ctx, &api.GenerateRequest{Model: m.Name, KeepAlive: keepAlive}, func(api.GenerateResponse) error { return nil })
	}
}

func parseKeepAlive(s string) *api.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil
	}
	return &api.Duration{Duration: d}
}

func parseDurationOr(s string, fallback time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return fallback
}

// Package controllers holds the RagAppliance reconciler: fetch → deferred status write →
// one sub-reconciler per component, each applying objects built by pure functions.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// RagApplianceReconciler reconciles RagAppliance objects.
type RagApplianceReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// APIReader reads uncached: Secrets are fetched by name, never listed or watched.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// External reaches Ollama and Qdrant; nil disables the API-driven parts (models and
	// collection), which then report Unknown.
	External *ExternalClients

	// ModelSyncImage is the image of the model-creation Jobs (the operator's own).
	ModelSyncImage string
	// ModelSyncRetryAfter is how long after a model-creation Job failed it is deleted and run
	// again. Default DefaultModelSyncRetryAfter.
	ModelSyncRetryAfter time.Duration
	// OperatorNamespace is the manager's namespace: the NetworkPolicies let its pods (and no
	// look-alike elsewhere) reach Ollama and Qdrant. Empty: any namespace.
	OperatorNamespace string

	applier *applier
	warm    warmer
	// routes are the appliances this manager applied an HTTPRoute for (to remove it when the
	// spec drops it, without looking for HTTPRoutes on every pass).
	routes sync.Map
	// monitors are the appliances this manager applied a PodMonitor for (same reason).
	monitors sync.Map
}

// scope is what one reconcile pass shares between sub-reconcilers.
type scope struct {
	ra *ragv1.RagAppliance
	// observed component states, filled by the sub-reconcilers that own them
	ollama, qdrant, ragServer state
	// qdrantKey is Qdrant's API key (for the operator's client); qdrantKeyHash a hash of every
	// key value, stamped on the pods that hold them.
	qdrantKey, qdrantKeyHash string
	// serverMetrics is what the RAG server replicas reported this pass (SLO figures, backlog).
	serverMetrics *serverMetrics
}

// subResult is one sub-reconciler's outcome; the shortest requeue wins.
type subResult struct {
	requeueAfter time.Duration
}

type subReconciler func(ctx context.Context, s *scope) (subResult, error)

// +kubebuilder:rbac:groups=rag.ragstack.dev,resources=ragappliances,verbs=get;list;watch
// +kubebuilder:rbac:groups=rag.ragstack.dev,resources=ragappliances/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=rag.ragstack.dev,resources=ragappliances/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services;configmaps;persistentvolumeclaims,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=list
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies;ingresses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete

// Reconcile brings one appliance's children to the declared state and reports it.
func (r *RagApplianceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	logger := log.FromContext(ctx)
	ra := &ragv1.RagAppliance{}
	if err := r.Get(ctx, req.NamespacedName, ra); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ra.DeletionTimestamp.IsZero() {
		// Owner references collect every child; nothing external is deleted.
		return ctrl.Result{}, nil
	}

	before := ra.DeepCopy()
	s := &scope{ra: ra}
	defer func() {
		setCondition(ra, ragv1.ConditionReady, readyState(ra.Status.Conditions))
		if retErr == nil {
			ra.Status.ObservedGeneration = ra.Generation
		}
		if equality.Semantic.DeepEqual(before.Status, ra.Status) {
			return
		}
		if err := r.Status().Patch(ctx, ra, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
			logger.Error(err, "Failed to write status", "ragappliance", req.NamespacedName)
			retErr = errors.Join(retErr, err)
		}
	}()

	ra.Status.Endpoints = endpoints(ra)
	var errs []error
	for _, sub := range []subReconciler{
		r.reconcileNetworkPolicies,
		r.reconcileOllama,
		r.reconcileQdrant,
		r.reconcileRagServer,
		r.reconcileSLO,
		r.reconcileMonitoring,
		r.reconcileModels,
		r.reconcileCollection,
	} {
		out, err := sub(ctx, s)
		if err != nil {
			errs = append(errs, err)
		}
		if out.requeueAfter > 0 && (res.RequeueAfter == 0 || out.requeueAfter < res.RequeueAfter) {
			res.RequeueAfter = out.requeueAfter
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	return res, nil
}

func endpoints(ra *ragv1.RagAppliance) ragv1.Endpoints {
	return ragv1.Endpoints{
		Ollama:     serviceURL(ra, ollamaName(ra), ollamaPort),
		QdrantGRPC: qdrantName(ra) + "." + ra.Namespace + ".svc:" + itoa(qdrantGRPCPort),
		QdrantHTTP: serviceURL(ra, qdrantName(ra), qdrantHTTPPort),
		RagServer:  serviceURL(ra, ragServerName(ra), ragServerPort),
	}
}

// applyAll applies every object, in order; a failure does not stop the ones after it (a
// refused PVC edit must not freeze the component's ConfigMap or Deployment). The failures
// become the component's condition and a Warning event each, and are returned so the pass is
// retried with backoff.
func (r *RagApplianceReconciler) applyAll(ctx context.Context, s *scope, condType string, objs ...client.Object) error {
	var errs []error
	for _, o := range objs {
		if err := r.applier.apply(ctx, o); err != nil {
			r.event(s.ra, corev1.EventTypeWarning, ragv1.ReasonApplyFailed, "Apply", err.Error())
			log.FromContext(ctx).Error(err, "Failed to apply child", "kind", o.GetObjectKind().GroupVersionKind().Kind, "name", o.GetName())
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		setCondition(s.ra, condType, falseState(ragv1.ReasonApplyFailed, err.Error()))
		return err
	}
	return nil
}

// removeUnlessDesired deletes the appliance's live object of obj's kind and name when the spec
// no longer asks for it (a PodDisruptionBudget after scaling to one replica). Only objects the
// appliance controls are touched; the read is from the label-scoped cache.
func (r *RagApplianceReconciler) removeUnlessDesired(ctx context.Context, ra *ragv1.RagAppliance, obj client.Object) error {
	err := r.Get(ctx, client.ObjectKey{Namespace: ra.Namespace, Name: obj.GetName()}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || !metav1.IsControlledBy(obj, ra) {
		return err
	}
	return client.IgnoreNotFound(r.Delete(ctx, obj))
}

// applyOrRemovePDB applies pdb when the spec asks for one, else removes the one named name.
func (r *RagApplianceReconciler) applyOrRemovePDB(ctx context.Context, s *scope, condType, name string, pdb *policyv1.PodDisruptionBudget) error {
	if pdb != nil {
		return r.applyAll(ctx, s, condType, pdb)
	}
	return r.removeUnlessDesired(ctx, s.ra, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ra.Namespace}})
}

// applied reports whether an object came back from the API server (it exists), so its status
// can be read even though another child of the component failed.
func applied(o client.Object) bool { return o.GetResourceVersion() != "" }

func (r *RagApplianceReconciler) event(ra *ragv1.RagAppliance, eventType, reason, action, note string) {
	r.eventAbout(ra, nil, eventType, reason, action, note)
}

// eventAbout records an event that concerns another object as well (a model Job): events.k8s.io
// merges events of one object, reason and action into a series ("x2") keeping the first note,
// unless their related objects differ, so each Job gets its own event.
func (r *RagApplianceReconciler) eventAbout(ra *ragv1.RagAppliance, related runtime.Object, eventType, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ra, related, eventType, reason, action, "%s", note)
	}
}

func (r *RagApplianceReconciler) reconcileOllama(ctx context.Context, s *scope) (subResult, error) {
	ra := s.ra
	_, ignored := ollamaEnv(ra)
	settings := ollamaSettingsState(ra, ignored)
	prev := meta.FindStatusCondition(ra.Status.Conditions, ragv1.ConditionOllamaSettings)
	if settings.Status != metav1.ConditionTrue && (prev == nil || prev.Reason != settings.Reason || prev.Message != settings.Message) {
		r.event(ra, corev1.EventTypeWarning, settings.Reason, "Render", settings.Message)
	}
	setCondition(ra, ragv1.ConditionOllamaSettings, settings)
	ra.Status.IgnoredSettings = ignored
	ra.Status.Endpoints.OllamaServers = nil
	if ollamaPooled(ra) {
		ra.Status.Endpoints.OllamaServers = ollamaServerURLs(ra)
	}
	var workload client.Object
	var err error
	var current func() state
	if ollamaPooled(ra) {
		sts := ollamaStatefulSet(ra)
		workload, current = sts, func() state { return statefulSetState(sts, ra.Spec.Ollama.Replicas) }
		// The single server's Deployment and model store give way to the pool's (models are
		// pulled again into each pod's store).
		err = errors.Join(r.applyAll(ctx, s, ragv1.ConditionOllamaReady, ollamaHeadlessService(ra), ollamaService(ra), sts),
			r.removeUnlessDesired(ctx, ra, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: ollamaName(ra), Namespace: ra.Namespace}}),
			r.removeUnlessDesired(ctx, ra, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: ollamaModelsPVC(ra), Namespace: ra.Namespace}}))
	} else {
		dep := ollamaDeployment(ra)
		workload, current = dep, func() state { return deploymentState(dep, 1) }
		err = errors.Join(r.applyAll(ctx, s, ragv1.ConditionOllamaReady, ollamaPVC(ra), ollamaService(ra), dep),
			r.removeUnlessDesired(ctx, ra, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: ollamaName(ra), Namespace: ra.Namespace}}),
			r.removeUnlessDesired(ctx, ra, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: ollamaHeadless(ra), Namespace: ra.Namespace}}))
	}
	if err != nil && !applied(workload) {
		return subResult{}, err
	}
	s.ollama = r.workloadState(ctx, ra, componentOllama, current())
	if err != nil {
		return subResult{}, err
	}
	setCondition(ra, ragv1.ConditionOllamaReady, s.ollama)
	return subResult{}, nil
}

func (r *RagApplianceReconciler) reconcileQdrant(ctx context.Context, s *scope) (subResult, error) {
	ra := s.ra
	var err error
	if s.qdrantKey, s.qdrantKeyHash, err = r.qdrantKeys(ctx, ra); err != nil {
		setCondition(ra, ragv1.ConditionQdrantReady, falseState(ragv1.ReasonSecretMissing, err.Error()))
		setCondition(ra, ragv1.ConditionRagServerReady, falseState(ragv1.ReasonSecretMissing, err.Error()))
		return subResult{requeueAfter: unreachableBackoff}, nil
	}
	sts := qdrantStatefulSet(ra)
	withSecretHash(&sts.Spec.Template, s.qdrantKeyHash)
	expanding, recreating, err := r.expandQdrantClaims(ctx, ra, sts)
	if err != nil {
		setCondition(ra, ragv1.ConditionQdrantReady, falseState(ragv1.ReasonApplyFailed, err.Error()))
		r.event(ra, corev1.EventTypeWarning, ragv1.ReasonApplyFailed, "ExpandVolume", err.Error())
		return subResult{}, err
	}
	if recreating {
		// The StatefulSet is being deleted (orphaning its pods); the next pass creates it again.
		err := r.applyAll(ctx, s, ragv1.ConditionQdrantReady, qdrantHeadlessService(ra), qdrantService(ra))
		s.qdrant = falseState(ragv1.ReasonVolumeExpanding, "StatefulSet "+sts.Name+": "+expanding)
		if err == nil {
			setCondition(ra, ragv1.ConditionQdrantReady, s.qdrant)
		}
		return subResult{requeueAfter: 2 * time.Second}, err
	}
	err = errors.Join(r.applyAll(ctx, s, ragv1.ConditionQdrantReady, qdrantHeadlessService(ra), qdrantService(ra), sts),
		r.applyOrRemovePDB(ctx, s, ragv1.ConditionQdrantReady, qdrantName(ra), qdrantPDB(ra)))
	if err != nil && !applied(sts) {
		return subResult{}, err
	}
	s.qdrant = r.workloadState(ctx, ra, componentQdrant, statefulSetState(sts, qdrantReplicas(ra)))
	if err != nil {
		return subResult{}, err
	}
	if expanding != "" && s.qdrant.Status == metav1.ConditionTrue {
		s.qdrant = trueState(ragv1.ReasonVolumeExpanding, s.qdrant.Message+"; "+expanding)
	}
	setCondition(ra, ragv1.ConditionQdrantReady, s.qdrant)
	if expanding != "" {
		return subResult{requeueAfter: 10 * time.Second}, nil
	}
	// Secrets are read by name, never watched (watching would mean reading every Secret): a
	// rotated key is picked up by this periodic pass, which writes nothing when none changed.
	return subResult{requeueAfter: secretResync}, nil
}

// secretResync is how soon a rotated Qdrant key rolls the pods that hold it.
const secretResync = time.Minute

func (r *RagApplianceReconciler) reconcileRagServer(ctx context.Context, s *scope) (subResult, error) {
	ra := s.ra
	if err := r.ensureAPIKeys(ctx, ra); err != nil {
		setCondition(ra, ragv1.ConditionRagServerReady, falseState(ragv1.ReasonApplyFailed, err.Error()))
		return subResult{}, err
	}
	if s.qdrantKeyHash == "" {
		// Qdrant's keys are missing: the server could not start; QdrantReady says why.
		return subResult{}, nil
	}
	secretHash := s.qdrantKeyHash
	if ref := ra.Spec.RagServer.Database.URISecretRef; ragServerShared(ra) && ref != nil {
		uri, err := r.secretValue(ctx, ra.Namespace, ref, "spec.ragServer.database.uriSecretRef")
		if err != nil {
			// The pods could not start without it: say so rather than let them crash-loop.
			setCondition(ra, ragv1.ConditionRagServerReady, falseState(ragv1.ReasonSecretMissing, err.Error()))
			return subResult{requeueAfter: secretResync}, nil
		}
		// A rotated password rolls the replicas, like a rotated Qdrant key.
		secretHash = hashOf([]byte(s.qdrantKeyHash), []byte(uri))
	}
	dep := ragServerDeployment(ra)
	withSecretHash(&dep.Spec.Template, secretHash)
	objs := []client.Object{ragServerConfigMap(ra), ragServerService(ra), dep}
	if pvc := ragServerPVC(ra); pvc != nil {
		objs = append([]client.Object{pvc}, objs...)
	}
	err := errors.Join(
		r.applyAll(ctx, s, ragv1.ConditionRagServerReady, objs...),
		r.applyOrRemovePDB(ctx, s, ragv1.ConditionRagServerReady, ragServerName(ra), ragServerPDB(ra)),
		r.reconcileExposure(ctx, s))
	if err != nil && !applied(dep) {
		return subResult{}, err
	}
	s.ragServer = r.workloadState(ctx, ra, componentRagServer, deploymentState(dep, ra.Spec.RagServer.Replicas))
	if err != nil {
		return subResult{}, err
	}
	setCondition(ra, ragv1.ConditionRagServerReady, s.ragServer)
	return subResult{}, nil
}

// ensureAPIKeys creates the API key Secret once when the spec names none. It is created, never
// applied: a key handed out must not change on the next pass.
func (r *RagApplianceReconciler) ensureAPIKeys(ctx context.Context, ra *ragv1.RagAppliance) error {
	if ref := ra.Spec.RagServer.Auth.APIKeysSecretRef; ref != nil && ref.Name != "" {
		return nil
	}
	existing := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ra.Namespace, Name: generatedKeysSecret(ra)}, existing)
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	secret, err := generatedAPIKeysSecret(ra)
	if err != nil {
		return err
	}
	if err := r.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	r.event(ra, corev1.EventTypeNormal, "APIKeyGenerated", "Create", "Generated admin API key in Secret "+secret.Name)
	return nil
}

// SetupWithManager watches appliances and every kind of child they own.
func (r *RagApplianceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.applier = newApplier(r.Client)
	return ctrl.NewControllerManagedBy(mgr).
		For(&ragv1.RagAppliance{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&batchv1.Job{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&networkingv1.Ingress{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		// Pods are not owned directly; a pod that cannot be scheduled or crash-loops changes no
		// owned object's status, so its appliance is woken by its instance label.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(applianceOfPod)).
		Named("ragappliance").
		// Appliances are independent; a few in parallel keep a GitOps sync of many quick.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// applianceOfPod maps a pod of one of the operator's workloads to its appliance.
func applianceOfPod(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	name := l["app.kubernetes.io/instance"]
	if name == "" || l[ManagedByLabel] != ManagedByValue {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
}

// reconcileNetworkPolicies applies the appliance's NetworkPolicies, or deletes them when the
// spec turns them off.
func (r *RagApplianceReconciler) reconcileNetworkPolicies(ctx context.Context, s *scope) (subResult, error) {
	ra := s.ra
	policies := networkPolicies(ra, r.OperatorNamespace)
	if policies == nil {
		list := &networkingv1.NetworkPolicyList{}
		if err := r.List(ctx, list, client.InNamespace(ra.Namespace), client.MatchingLabels{"app.kubernetes.io/instance": ra.Name, ManagedByLabel: ManagedByValue}); err != nil {
			return subResult{}, err
		}
		for i := range list.Items {
			if metav1.IsControlledBy(&list.Items[i], ra) {
				if err := r.Delete(ctx, &list.Items[i]); client.IgnoreNotFound(err) != nil {
					return subResult{}, err
				}
			}
		}
		setCondition(ra, ragv1.ConditionNetworkPolicyReady, trueState(ragv1.ReasonDisabled, "spec.networkPolicy.enabled is false: the data plane is open to every pod that can reach it"))
		return subResult{}, nil
	}
	objs := make([]client.Object, 0, len(policies))
	for _, np := range policies {
		objs = append(objs, np)
	}
	if err := r.applyAll(ctx, s, ragv1.ConditionNetworkPolicyReady, objs...); err != nil {
		return subResult{}, err
	}
	setCondition(ra, ragv1.ConditionNetworkPolicyReady, trueState(ragv1.ReasonPoliciesApplied,
		fmt.Sprintf("%d NetworkPolicies applied (enforced by CNIs that implement NetworkPolicy)", len(policies))))
	return subResult{}, nil
}

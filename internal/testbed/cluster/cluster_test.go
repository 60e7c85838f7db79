package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func TestKWOKConfigHoldsSelectedJobPods(t *testing.T) {
	data, err := kwokConfig(map[string][]string{"app.kubernetes.io/name": {"model-sync"}, "a": {"x", "y"}})
	if err != nil {
		t.Fatal(err)
	}
	var complete map[string]any
	var names []string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(strings.TrimPrefix(doc, "---\n")), &m); err != nil {
			t.Fatalf("stage does not parse: %v\n%s", err, doc)
		}
		if m["kind"] != "Stage" {
			t.Fatalf("not a Stage: %v", m["kind"])
		}
		name := m["metadata"].(map[string]any)["name"].(string)
		names = append(names, name)
		if name == "pod-complete" {
			complete = m
		}
	}
	for _, want := range []string{"node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete", "pvc-provision", "pv-bind"} {
		if !slices.Contains(names, want) {
			t.Errorf("no stage %s in %v", want, names)
		}
	}
	exprs := complete["spec"].(map[string]any)["selector"].(map[string]any)["matchExpressions"].([]any)
	var held []string
	for _, e := range exprs {
		e := e.(map[string]any)
		if e["operator"] == "NotIn" {
			held = append(held, e["key"].(string)+"="+strings.Join(toStrings(e["values"]), ","))
		}
	}
	want := []string{`.metadata.labels["a"]=x,y`, `.metadata.labels["app.kubernetes.io/name"]=model-sync`}
	if !slices.Equal(held, want) {
		t.Errorf("hold expressions %q, want %q", held, want)
	}
	if plain, _ := kwokConfig(nil); strings.Contains(string(plain), "\n#HOLD\n") || strings.Contains(string(plain), "NotIn'\n      values: [") {
		t.Error("without holds the marker or an expression is left in the config")
	}
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func TestManagerArgsOutsidePod(t *testing.T) {
	got := managerArgsOutsidePod("ops")([]string{"--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--zap-log-level=info"})
	if got[0] != "--leader-elect" || got[3] != "--zap-log-level=info" || got[4] != "--leader-election-namespace=ops" || len(got) != 5 {
		t.Errorf("args %q", got)
	}
	for _, a := range got[1:3] {
		if !strings.Contains(a, "=127.0.0.1:") {
			t.Errorf("%s does not bind to loopback", a)
		}
	}
	got = managerArgsOutsidePod("ops")([]string{"--metrics-bind-address=0", "--leader-elect=false"})
	if !slices.Equal(got, []string{"--metrics-bind-address=0", "--leader-elect=false"}) {
		t.Errorf("args %q: a disabled server or leader election must stay as is", got)
	}
	if got := replaceFlag("--ollama", "http://127.0.0.1:1")([]string{"model-sync", "--ollama=http://x.svc:11434", "--variant={}"}); got[1] != "--ollama=http://127.0.0.1:1" {
		t.Errorf("replaceFlag: %q", got)
	}
}

func TestLastLines(t *testing.T) {
	if got := lastLines("a\nb\nc\n", 2, 100); got != "b\nc" {
		t.Errorf("%q", got)
	}
	if got := lastLines("abcdef", 5, 3); got != "def" {
		t.Errorf("%q", got)
	}
}

// TestCluster starts one cluster and checks it on two fronts. It runs workloads against real
// controllers: scheduling by resources, Deployment and StatefulSet rollouts with provisioned
// claims, Jobs completed by KWOK, held Jobs run (and failed) by the JobRunner, and a
// ServiceAccount identity with no rights. And it is as strict as a real cluster: the GPU node
// is tainted and keeps untolerating pods off, the restricted Pod Security level refuses
// privileged and root pods, and OwnerReferencesPermissionEnforcement refuses a blocking owner
// reference from an identity that may not set the owner's finalizers.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	if err := CheckAssets(Options{}); err != nil {
		if os.Getenv("RAG_REQUIRE_E2E") == "1" {
			t.Fatal(err)
		}
		t.Skipf("%v (set RAG_REQUIRE_E2E=1 to fail instead)", err)
	}
	start := time.Now()
	cl, err := Start(context.Background(), Options{HoldJobPods: map[string][]string{"run": {"here"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster up in %s", time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			cl.KeepLogs()
			t.Logf("logs kept in %s", cl.LogDir())
		}
		if err := cl.Stop(); err != nil {
			t.Error(err)
		}
	})
	// Each part has its own deadline (Start has its own too).
	for _, part := range []struct {
		name string
		fn   func(context.Context, *testing.T, *Cluster)
	}{
		{"gpu node", testGPUNode},
		{"workloads", testWorkloads},
		{"untolerated taint", testUntoleratedTaint},
		{"pod security", testPodSecurity},
		{"owner references", testOwnerReferences},
	} {
		t.Run(part.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			part.fn(ctx, t, cl)
		})
	}
}

// testGPUNode: the default node is a DGX Spark as the GPU Operator and a kubelet present it.
func testGPUNode(ctx context.Context, t *testing.T, cl *Cluster) {
	node := &corev1.Node{}
	if err := cl.Client().Get(ctx, client.ObjectKey{Name: "dgx-spark-0"}, node); err != nil {
		t.Fatal(err)
	}
	if got := node.Status.Allocatable[GPUResource]; got.Cmp(resource.MustParse("1")) != 0 || node.Labels["kubernetes.io/arch"] != "arm64" || node.Labels[GPUPresentLabel] != "true" {
		t.Errorf("node allocatable %v labels %v", node.Status.Allocatable, node.Labels)
	}
	capMem, allocMem := node.Status.Capacity[corev1.ResourceMemory], node.Status.Allocatable[corev1.ResourceMemory]
	if capMem.Cmp(resource.MustParse("128Gi")) != 0 || allocMem.Cmp(resource.MustParse("119Gi")) != 0 {
		t.Errorf("memory capacity %s allocatable %s, want 128Gi and 119Gi (the kubelet's reservation)", capMem.String(), allocMem.String())
	}
	if cpu := node.Status.Allocatable[corev1.ResourceCPU]; cpu.Cmp(resource.MustParse("20")) != 0 {
		t.Errorf("allocatable cpu %s, want 20", cpu.String())
	}
	if !slices.ContainsFunc(node.Spec.Taints, func(tn corev1.Taint) bool { return tn.MatchTaint(ptr.To(GPUTaint())) && tn.Value == "present" }) {
		t.Errorf("taints %v, want %s=present:NoSchedule", node.Spec.Taints, GPUTaintKey)
	}
}

// testWorkloads: real controllers, KWOK and the job runner, with pods that tolerate the GPU
// node's taint.
func testWorkloads(ctx context.Context, t *testing.T, cl *Cluster) {
	c := cl.Client()
	ns := "default"
	gpuOK := []corev1.Toleration{GPUToleration()}

	labels := map[string]string{"app": "web"}
	gpu := corev1.ResourceList{GPUResource: resource.MustParse("1")}
	ctr := corev1.Container{Name: "c", Image: "example/web:1", Resources: corev1.ResourceRequirements{Limits: gpu}}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{ctr}, Tolerations: gpuOK,
					NodeSelector: map[string]string{"kubernetes.io/arch": "arm64"}},
			},
		},
	}
	greedy := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "greedy", Namespace: ns},
		Spec: corev1.PodSpec{Tolerations: gpuOK, Containers: []corev1.Container{{Name: "c", Image: "x", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{GPUResource: resource.MustParse("2")},
		}}}},
	}
	stsLabels := map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: stsLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: stsLabels},
				Spec: corev1.PodSpec{Tolerations: gpuOK, Containers: []corev1.Container{{Name: "c", Image: "example/db:1",
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
	job := func(name string, held bool, script string) *batchv1.Job {
		l := map[string]string{"job": name}
		if held {
			l["run"] = "here"
		}
		return &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: l},
					Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Tolerations: gpuOK, Containers: []corev1.Container{{
						Name: "c", Image: "example/tool:1", Command: []string{"/tool", "-c"}, Args: []string{script},
						Env:                      []corev1.EnvVar{{Name: "GREETING", Value: "hello"}},
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					}}},
				},
			},
		}
	}
	runner := cl.StartJobRunner(ctx, JobRunnerOptions{
		Selector: map[string]string{"run": "here"},
		Binaries: map[string]string{"example/tool:1": "/bin/sh"},
	})
	defer runner.Stop()
	for _, o := range []client.Object{dep, greedy, sts,
		job("simulated", false, "exit 9"),
		job("ok", true, `echo "$GREETING from the runner"`),
		job("broken", true, "echo about to fail; echo the reason >&2; exit 3"),
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	eventually(ctx, t, "rollouts and jobs", func() error {
		var errs []error
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(dep), d); err != nil || d.Status.AvailableReplicas != 1 {
			errs = append(errs, errors.New("deployment web not available"))
		}
		s := &appsv1.StatefulSet{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(sts), s); err != nil || s.Status.ReadyReplicas != 1 {
			errs = append(errs, errors.New("statefulset db not ready"))
		}
		for name, want := range map[string]batchv1.JobConditionType{"simulated": batchv1.JobComplete, "ok": batchv1.JobComplete, "broken": batchv1.JobFailed} {
			j := &batchv1.Job{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, j); err != nil || !jobHas(j, want) {
				errs = append(errs, errors.New("job "+name+" not "+string(want)))
			}
		}
		return errors.Join(errs...)
	})

	pvc := &corev1.PersistentVolumeClaim{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "data-db-0"}, pvc); err != nil || pvc.Status.Phase != corev1.ClaimBound || *pvc.Spec.StorageClassName != StorageClass {
		t.Errorf("claim data-db-0: %v %+v", err, pvc.Status)
	}
	eventually(ctx, t, "pod greedy unschedulable for want of GPUs", func() error {
		g := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(greedy), g); err != nil {
			return err
		}
		msg, ok := unschedulable(g)
		if g.Spec.NodeName != "" || g.Status.Phase != corev1.PodPending || !ok || !strings.Contains(msg, "Insufficient nvidia.com/gpu") {
			return fmt.Errorf("a pod asking for 2 GPUs of a 1-GPU node: node %q phase %s %v", g.Spec.NodeName, g.Status.Phase, g.Status.Conditions)
		}
		return nil
	})

	runs := runner.Runs()
	byJob := map[string]JobRun{}
	for _, r := range runs {
		byJob[r.Job] = r
	}
	if len(runs) != 2 || byJob["ok"].ExitCode != 0 || strings.TrimSpace(byJob["ok"].Output) != "hello from the runner" {
		t.Errorf("runs: %+v", runs)
	}
	if r := byJob["broken"]; r.ExitCode != 3 || !slices.Equal(r.Command, []string{"/bin/sh", "-c", "echo about to fail; echo the reason >&2; exit 3"}) {
		t.Errorf("broken run: %+v", r)
	}
	if err := runner.Err(); err != nil {
		t.Error(err)
	}
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{"job": "broken"}); err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of job broken: %v %d", err, len(pods.Items))
	}
	term := pods.Items[0].Status.ContainerStatuses[0].State.Terminated
	if pods.Items[0].Status.Phase != corev1.PodFailed || term == nil || term.ExitCode != 3 || term.Message != "about to fail\nthe reason" {
		t.Errorf("failed pod status: %s %+v", pods.Items[0].Status.Phase, term)
	}

	// A ServiceAccount without bindings may do nothing: the identity is really the account's.
	sc := serviceAccountClient(ctx, t, cl, ns, "nobody")
	if err := sc.List(ctx, &corev1.PodList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), "system:serviceaccount:default:nobody") {
		t.Errorf("listing pods as an unbound ServiceAccount: %v, want Forbidden for system:serviceaccount:default:nobody", err)
	}
}

// testUntoleratedTaint: a pod that does not tolerate the GPU taint stays Pending, and the
// scheduler says why, in the words an operator's condition can pass on.
func testUntoleratedTaint(ctx context.Context, t *testing.T, cl *Cluster) {
	c := cl.Client()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "intolerant", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "pod intolerant unschedulable", func() error {
		p := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), p); err != nil {
			return err
		}
		msg, ok := unschedulable(p)
		if !ok {
			return fmt.Errorf("pod %s on %q, conditions %v", p.Status.Phase, p.Spec.NodeName, p.Status.Conditions)
		}
		// "0/1 nodes are available: 1 node(s) had untolerated taint(s). …"
		if !strings.Contains(msg, "untolerated taint") {
			return fmt.Errorf("scheduler's message %q does not say the taint is not tolerated", msg)
		}
		t.Logf("scheduler: %s", msg)
		return nil
	})
}

// testPodSecurity: in a namespace with the restricted level, the apiserver refuses privileged,
// root and unhardened pods, and a Deployment of such pods never gets one (its ReplicaSet says
// why); a hardened pod is admitted and runs.
func testPodSecurity(ctx context.Context, t *testing.T, cl *Cluster) {
	c := cl.Client()
	ns := "restricted"
	if err := cl.CreateRestrictedNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	live := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, live); err != nil || live.Labels[PodSecurityEnforce] != PodSecurityRestricted {
		t.Fatalf("namespace %s: %v labels %v", ns, err, live.Labels)
	}
	pod := func(name string, sc *corev1.SecurityContext, psc *corev1.PodSecurityContext) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{
				Tolerations:     []corev1.Toleration{GPUToleration()},
				SecurityContext: psc,
				Containers:      []corev1.Container{{Name: "c", Image: "x", SecurityContext: sc}},
			},
		}
	}
	hardened := func() (*corev1.SecurityContext, *corev1.PodSecurityContext) {
		return &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}, &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			}
	}
	sc, psc := hardened()
	root := pod("root", &corev1.SecurityContext{Privileged: ptr.To(true), RunAsUser: ptr.To[int64](0)}, nil)
	rootUser := pod("root-user", sc, &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0), SeccompProfile: psc.SeccompProfile})
	for _, tc := range []struct {
		pod  *corev1.Pod
		want []string
	}{
		{root, []string{`violates PodSecurity "restricted:latest"`, "privileged", "runAsNonRoot", "runAsUser=0"}},
		{rootUser, []string{`violates PodSecurity "restricted:latest"`, "runAsUser=0"}},
		{pod("unhardened", nil, nil), []string{`violates PodSecurity "restricted:latest"`, "allowPrivilegeEscalation", "seccompProfile"}},
	} {
		err := c.Create(ctx, tc.pod)
		if !apierrors.IsForbidden(err) {
			t.Errorf("pod %s in a restricted namespace: %v, want Forbidden", tc.pod.Name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("pod %s refused with %q, which lacks %q", tc.pod.Name, err, w)
			}
		}
	}
	ok := pod("hardened", sc, psc)
	if err := c.Create(ctx, ok); err != nil {
		t.Fatalf("a pod meeting the restricted level was refused: %v", err)
	}

	// A controller's pods are refused too: the Deployment is admitted, its ReplicaSet cannot
	// create a pod and says so in its ReplicaFailure condition.
	labels := map[string]string{"app": "privileged"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: root.Spec},
		},
	}
	if err := c.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "the hardened pod Running and the privileged ReplicaSet refused", func() error {
		p := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ok), p); err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod hardened is %s", p.Status.Phase)
		}
		rss := &appsv1.ReplicaSetList{}
		if err := c.List(ctx, rss, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
			return err
		}
		if len(rss.Items) != 1 {
			return fmt.Errorf("%d ReplicaSets", len(rss.Items))
		}
		for _, cond := range rss.Items[0].Status.Conditions {
			if cond.Type == appsv1.ReplicaSetReplicaFailure && cond.Status == corev1.ConditionTrue &&
				strings.Contains(cond.Message, "violates PodSecurity") {
				return nil
			}
		}
		return fmt.Errorf("ReplicaSet conditions %v", rss.Items[0].Status.Conditions)
	})
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil || len(pods.Items) != 0 {
		t.Errorf("pods of the privileged Deployment: %v %d, want none", err, len(pods.Items))
	}
}

// testOwnerReferences: an identity bound by RBAC (like an operator's ServiceAccount) may set an
// owner reference, but blockOwnerDeletion only with `update` on the owner's finalizers.
func testOwnerReferences(ctx context.Context, t *testing.T, cl *Cluster) {
	c := cl.Client()
	ns := "default"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "configmaps", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "owner", Namespace: ns}},
	}
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns}}
	for _, o := range []client.Object{role, binding, owner} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	sc := serviceAccountClient(ctx, t, cl, ns, "owner")
	child := func(name string, block bool) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID,
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(block),
		}}}}
	}
	// RBAC takes effect once the apiserver's informers saw the binding.
	eventually(ctx, t, "the ServiceAccount's Role to take effect", func() error {
		return sc.Create(ctx, child("plain", false))
	})
	err := sc.Create(ctx, child("blocking", true))
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "cannot set blockOwnerDeletion") {
		t.Fatalf("blockOwnerDeletion without finalizers permission: %v, want Forbidden (cannot set blockOwnerDeletion)", err)
	}
	t.Logf("refused: %v", err)

	// The grant an operator's ClusterRole carries for its owner kind (<resource>/finalizers).
	role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps/finalizers"}, Verbs: []string{"update"}})
	if err := c.Update(ctx, role); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "blockOwnerDeletion allowed with finalizers permission", func() error {
		return sc.Create(ctx, child("blocking", true))
	})
}

// serviceAccountClient creates the ServiceAccount and returns a client authenticated as it.
func serviceAccountClient(ctx context.Context, t *testing.T, cl *Cluster, ns, name string) client.Client {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if err := cl.Client().Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	cfg, err := cl.ServiceAccountConfig(ctx, ns, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func jobHas(j *batchv1.Job, typ batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// unschedulable is the scheduler's message when it marked the pod Unschedulable.
func unschedulable(p *corev1.Pod) (string, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message, true
		}
	}
	return "", false
}

func eventually(ctx context.Context, t *testing.T, what string, cond func() error) {
	t.Helper()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

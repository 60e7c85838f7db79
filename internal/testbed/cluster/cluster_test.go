package cluster

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
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

// TestClusterRunsWorkloads starts the cluster and checks each simulated part against real
// controllers: scheduling by resources, Deployment and StatefulSet rollouts with provisioned
// claims, Jobs completed by KWOK, held Jobs run (and failed) by the JobRunner, and a
// ServiceAccount identity with no rights.
func TestClusterRunsWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	if err := CheckAssets(Options{}); err != nil {
		if os.Getenv("RAG_REQUIRE_E2E") == "1" {
			t.Fatal(err)
		}
		t.Skipf("%v (set RAG_REQUIRE_E2E=1 to fail instead)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	cl, err := Start(ctx, Options{HoldJobPods: map[string][]string{"run": {"here"}}})
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
	c := cl.Client()
	ns := "default"

	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: "dgx-spark-0"}, node); err != nil {
		t.Fatal(err)
	}
	if got := node.Status.Allocatable[GPUResource]; got.Cmp(resource.MustParse("1")) != 0 || node.Labels["kubernetes.io/arch"] != "arm64" {
		t.Errorf("node allocatable %v labels %v", node.Status.Allocatable, node.Labels)
	}

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
				Spec:       corev1.PodSpec{Containers: []corev1.Container{ctr}, NodeSelector: map[string]string{"kubernetes.io/arch": "arm64"}},
			},
		},
	}
	greedy := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "greedy", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x", Resources: corev1.ResourceRequirements{
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
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/db:1",
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
					Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
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
	g := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(greedy), g); err != nil {
		t.Fatal(err)
	}
	if g.Spec.NodeName != "" || g.Status.Phase != corev1.PodPending || !podUnschedulable(g) {
		t.Errorf("a pod asking for 2 GPUs of a 1-GPU node was scheduled: node %q phase %s %v", g.Spec.NodeName, g.Status.Phase, g.Status.Conditions)
	}

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
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: ns}}
	if err := c.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	cfg, err := cl.ServiceAccountConfig(ctx, ns, "nobody", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.List(ctx, &corev1.PodList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), "system:serviceaccount:default:nobody") {
		t.Errorf("listing pods as an unbound ServiceAccount: %v, want Forbidden for system:serviceaccount:default:nobody", err)
	}
}

func jobHas(j *batchv1.Job, typ batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func podUnschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
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

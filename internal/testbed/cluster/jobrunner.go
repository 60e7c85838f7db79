package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// JobRunnerOptions configure a JobRunner.
type JobRunnerOptions struct {
	// Selector picks the pods to run (the same labels as Options.HoldJobPods, so KWOK leaves
	// their completion to the runner).
	Selector map[string]string
	// Binaries maps a container image to the local binary that stands for the image's
	// entrypoint: the container's command[0] is replaced by it.
	Binaries map[string]string
	// Rewrite adjusts a container's arguments for this machine, as cluster DNS would, e.g. a
	// Service URL to the local server standing in for it. Nil keeps them.
	Rewrite func(args []string) []string
	// Timeout bounds one run (default 2 min); a run past it fails the pod (exit code 124).
	Timeout time.Duration
}

// JobRun is one pod the runner ran.
type JobRun struct {
	Namespace, Pod, Job string
	// Command is what ran on this machine (binary and rewritten arguments).
	Command  []string
	ExitCode int
	// Output is the run's combined output (the last 16 KiB).
	Output            string
	Started, Finished time.Time
}

// JobRunner plays the kubelet for held Job pods: once KWOK reports such a pod Running, it runs
// the pod's (single) container command on this machine and then reports the pod Succeeded or
// Failed with the container's exit code and termination message, as a kubelet would. The Job
// controller takes it from there (completion, retries up to backoffLimit).
type JobRunner struct {
	c    *Cluster
	opts JobRunnerOptions

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started map[types.UID]bool
	runs    []JobRun
	errs    []error
}

// StartJobRunner starts polling for held pods; Stop ends it (and any run in flight).
func (c *Cluster) StartJobRunner(ctx context.Context, opts JobRunnerOptions) *JobRunner {
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &JobRunner{c: c, opts: opts, cancel: cancel, started: map[types.UID]bool{}}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			r.poll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(150 * time.Millisecond):
			}
		}
	}()
	return r
}

// Stop stops polling and waits for runs in flight (which are cancelled).
func (r *JobRunner) Stop() {
	r.cancel()
	r.wg.Wait()
}

// Runs lists the finished runs in the order they finished.
func (r *JobRunner) Runs() []JobRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]JobRun(nil), r.runs...)
}

// Err reports the runner's own failures (listing pods, writing their status), if any.
func (r *JobRunner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

func (r *JobRunner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, err)
	}
}

func (r *JobRunner) poll(ctx context.Context) {
	pods := &corev1.PodList{}
	if err := r.c.client.List(ctx, pods, client.MatchingLabels(r.opts.Selector)); err != nil {
		if ctx.Err() == nil {
			r.fail(fmt.Errorf("list pods: %w", err))
		}
		return
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || pod.Spec.NodeName == "" {
			continue
		}
		r.mu.Lock()
		seen := r.started[pod.UID]
		r.started[pod.UID] = true
		r.mu.Unlock()
		if seen {
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.run(ctx, pod)
		}()
	}
}

// run executes the pod's container and reports the outcome in the pod's status.
func (r *JobRunner) run(ctx context.Context, pod *corev1.Pod) {
	run := JobRun{Namespace: pod.Namespace, Pod: pod.Name, Started: time.Now()}
	for _, o := range pod.OwnerReferences {
		if o.Kind == "Job" {
			run.Job = o.Name
		}
	}
	ctr := pod.Spec.Containers[0] // the API server refuses a pod without containers
	var runErr error
	bin, ok := r.opts.Binaries[ctr.Image]
	switch {
	case len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) != 0:
		runErr = fmt.Errorf("the job runner runs pods of one container; %s has %d (and %d init containers)", pod.Name, len(pod.Spec.Containers), len(pod.Spec.InitContainers))
	case !ok:
		runErr = fmt.Errorf("no local binary stands for image %s", ctr.Image)
	case len(ctr.Command) == 0:
		runErr = fmt.Errorf("container %s has no command (the image's entrypoint is unknown here)", ctr.Name)
	}
	var out tailBuffer
	if runErr == nil {
		args := append(append([]string(nil), ctr.Command[1:]...), ctr.Args...)
		if r.opts.Rewrite != nil {
			args = r.opts.Rewrite(args)
		}
		run.Command = append([]string{bin}, args...)
		rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
		cmd := exec.CommandContext(rctx, bin, args...)
		cmd.Env = podEnv(ctr)
		cmd.Dir = os.TempDir()
		cmd.Stdout, cmd.Stderr = &out, &out
		runErr = cmd.Run()
		if rctx.Err() == context.DeadlineExceeded {
			runErr = fmt.Errorf("ran past %s: %w", r.opts.Timeout, runErr)
		}
		cancel()
	} else {
		fmt.Fprintln(&out, runErr)
	}
	if ctx.Err() != nil {
		return // stopping: leave the pod as it is
	}
	run.Finished = time.Now()
	run.Output = out.String()
	switch e := runErr.(type) {
	case nil:
	case *exec.ExitError:
		run.ExitCode = e.ExitCode()
		if run.ExitCode < 0 {
			run.ExitCode = 137
		}
	default:
		run.ExitCode = 128
	}
	if strings.Contains(fmt.Sprint(runErr), "ran past") {
		run.ExitCode = 124
	}
	if err := r.report(ctx, pod, ctr, run); err != nil {
		r.fail(fmt.Errorf("report pod %s/%s: %w", pod.Namespace, pod.Name, err))
	}
	r.mu.Lock()
	r.runs = append(r.runs, run)
	r.mu.Unlock()
}

// report writes the terminated container state and the pod phase, as the kubelet does.
func (r *JobRunner) report(ctx context.Context, pod *corev1.Pod, ctr corev1.Container, run JobRun) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		live := &corev1.Pod{}
		if err := r.c.client.Get(ctx, client.ObjectKeyFromObject(pod), live); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		term := &corev1.ContainerStateTerminated{
			ExitCode:   int32(run.ExitCode),
			Reason:     "Completed",
			StartedAt:  metav1.NewTime(run.Started),
			FinishedAt: metav1.NewTime(run.Finished),
		}
		phase := corev1.PodSucceeded
		if run.ExitCode != 0 {
			phase, term.Reason = corev1.PodFailed, "Error"
			if ctr.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
				term.Message = lastLines(run.Output, 80, 2048)
			}
		}
		statuses := []corev1.ContainerStatus{{
			Name:    ctr.Name,
			Image:   ctr.Image,
			ImageID: ctr.Image,
			Ready:   false,
			Started: ptr.To(false),
			State:   corev1.ContainerState{Terminated: term},
		}}
		live.Status.Phase = phase
		live.Status.ContainerStatuses = statuses
		now := metav1.Now()
		for i, c := range live.Status.Conditions {
			if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
				live.Status.Conditions[i].Status = corev1.ConditionFalse
				live.Status.Conditions[i].Reason = "PodCompleted"
				live.Status.Conditions[i].LastTransitionTime = now
			}
		}
		return r.c.client.Status().Update(ctx, live)
	})
}

// podEnv is the container's literal environment on top of a minimal one (PATH, HOME, TMPDIR).
func podEnv(ctr corev1.Container) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	names := map[string]string{}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			names[e.Name] = e.Value
		}
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+names[k])
	}
	return env
}

// lastLines is the kubelet's FallbackToLogsOnError message: the last lines, at most max bytes.
func lastLines(s string, lines, max int) string {
	s = strings.TrimRight(s, "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	s = strings.Join(parts, "\n")
	if len(s) > max {
		s = s[len(s)-max:]
	}
	return s
}

// tailBuffer keeps the last 16 KiB written to it; safe for concurrent writers.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 16<<10 {
		b.buf = b.buf[len(b.buf)-16<<10:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

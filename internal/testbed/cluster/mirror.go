package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MirrorOptions configure a Mirror.
type MirrorOptions struct {
	// Namespace and Deployment name the Deployment; Container its container (default: the
	// first).
	Namespace, Deployment, Container string
	// Binary stands for the container image's entrypoint: it replaces command[0].
	Binary string
	// Rewrite adjusts the arguments for a process outside the pod (bind addresses, what the
	// pod would discover from its mounts). Nil keeps them.
	Rewrite func(args []string) []string
	// ReadyURL, when set, is polled after start until it answers 200 (the readiness probe,
	// at its local address); Rewrite usually decides it.
	ReadyURL func(args []string) string
	// TokenTTL is the lifetime of the ServiceAccount token (default 24 h).
	TokenTTL time.Duration
}

// Mirror runs the container of a Deployment's pod template on this machine, authenticated as
// the pod's ServiceAccount: the Deployment's pods are simulated by KWOK, so this process is what
// actually does the pod's work, with the pod's command line and the pod's RBAC.
type Mirror struct {
	c    *Cluster
	opts MirrorOptions

	mu      sync.Mutex
	proc    *process
	args    []string
	sa      string
	logPath string
}

// MirrorDeployment starts the mirror of the Deployment's current pod template.
func (c *Cluster) MirrorDeployment(ctx context.Context, opts MirrorOptions) (*Mirror, error) {
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 24 * time.Hour
	}
	m := &Mirror{c: c, opts: opts}
	return m, m.start(ctx)
}

// Args is the command line running now (binary first).
func (m *Mirror) Args() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.args...)
}

// ServiceAccount is the account the process authenticates as (namespace/name).
func (m *Mirror) ServiceAccount() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sa
}

// LogPath is the process's log file (it outlives the process, until the cluster stops).
func (m *Mirror) LogPath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.logPath
}

// Restart stops the process and starts it again from the Deployment's current template (after
// an upgrade changed it), as a rollout replaces the pod.
func (m *Mirror) Restart(ctx context.Context) error {
	m.Stop()
	return m.start(ctx)
}

// Stop stops the process (SIGTERM, then SIGKILL after 10 s).
func (m *Mirror) Stop() {
	m.mu.Lock()
	p := m.proc
	m.proc = nil
	m.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Kill ends the process with SIGKILL, no grace period (fault drills); Restart starts it again.
func (m *Mirror) Kill() {
	m.mu.Lock()
	p := m.proc
	m.proc = nil
	m.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// Err is nil while the process runs, else how it ended.
func (m *Mirror) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return fmt.Errorf("stopped")
	}
	if err := m.proc.exitErr(); err != nil {
		return fmt.Errorf("%s exited: %v; its log (%s) ends with:\n%s", m.proc.name, err, m.proc.logPath, tail(m.proc.logPath, 3<<10))
	}
	return nil
}

func (m *Mirror) start(ctx context.Context) error {
	d := &appsv1.Deployment{}
	if err := m.c.client.Get(ctx, client.ObjectKey{Namespace: m.opts.Namespace, Name: m.opts.Deployment}, d); err != nil {
		return fmt.Errorf("deployment %s/%s: %w", m.opts.Namespace, m.opts.Deployment, err)
	}
	spec := d.Spec.Template.Spec
	var ctr *corev1.Container
	for i := range spec.Containers {
		if m.opts.Container == "" || spec.Containers[i].Name == m.opts.Container {
			ctr = &spec.Containers[i]
			break
		}
	}
	if ctr == nil {
		return fmt.Errorf("deployment %s has no container %q", d.Name, m.opts.Container)
	}
	if len(ctr.Command) == 0 {
		return fmt.Errorf("container %s has no command (the image's entrypoint is unknown here)", ctr.Name)
	}
	args := append(append([]string(nil), ctr.Command[1:]...), ctr.Args...)
	if m.opts.Rewrite != nil {
		args = m.opts.Rewrite(args)
	}

	saName := spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	cfg, err := m.c.ServiceAccountConfig(ctx, d.Namespace, saName, m.opts.TokenTTL)
	if err != nil {
		return err
	}
	kubeconfig, err := KubeconfigFor(cfg, "system:serviceaccount:"+d.Namespace+":"+saName)
	if err != nil {
		return err
	}
	name := d.Name + "-" + ctr.Name
	kubeconfigPath := filepath.Join(m.c.logDir, name+".kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}
	env := podEnv(*ctr)
	env = append(env, "KUBECONFIG="+kubeconfigPath)
	p := &process{name: name, path: m.opts.Binary, args: args, env: env}
	if err := p.start(m.c.logDir); err != nil {
		return err
	}
	m.mu.Lock()
	m.proc, m.args, m.sa, m.logPath = p, append([]string{m.opts.Binary}, args...), d.Namespace+"/"+saName, p.logPath
	m.mu.Unlock()

	if m.opts.ReadyURL == nil {
		return nil
	}
	url := m.opts.ReadyURL(args)
	hc := &http.Client{Timeout: time.Second}
	for {
		if resp, err := hc.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := m.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %w", name, url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FreeLoopbackAddr is 127.0.0.1 with a port free right now.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Helm runs a helm binary against the cluster, with its own config, cache and data folders so
// the developer's repositories and plugins play no part.
type Helm struct {
	Bin        string
	Kubeconfig string // path
	home       string
}

// NewHelm prepares a helm for the cluster (bin "" means DefaultHelm).
func (c *Cluster) NewHelm(bin string) (*Helm, error) {
	if bin == "" {
		bin = DefaultHelm()
	}
	if err := executable(bin); err != nil {
		return nil, &MissingAssetError{Path: bin, Target: "helm"}
	}
	home := filepath.Join(c.logDir, "helm")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	return &Helm{Bin: bin, Kubeconfig: c.KubeconfigPath(), home: home}, nil
}

// Run runs helm with the arguments and returns its standard output; an error carries stderr.
func (h *Helm) Run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, h.Bin, append([]string{"--kubeconfig", h.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
		"HELM_DRIVER=secret",
	)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

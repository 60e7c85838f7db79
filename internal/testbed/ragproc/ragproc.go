// Package ragproc builds the rag-server binary and runs it as a separate process with a
// generated config and API keys: the demo (cmd/demo-rag), the browser tests (test/ui) and the
// UI benchmark (test/benchui) all drive the real binary this way.
package ragproc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ragstack/rag-operator/internal/auth"
	"github.com/ragstack/rag-operator/internal/serverconfig"
)

// Build compiles ./cmd/rag-server of the module containing this package into out (CGO off, as
// released). Run it before any deadline starts.
func Build(ctx context.Context, out string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/rag-server")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/rag-server: %w\n%s", err, b)
	}
	return nil
}

// Key is one API key to write into the keys file.
type Key = auth.Record

// NewToken returns a random key (32 URL-safe characters).
func NewToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Options start one server.
type Options struct {
	Binary string // the built rag-server
	Dir    string // config, keys, log and (unless Config.DataDir is set) the data directory
	// Config is the server's config; Listen defaults to a free loopback port, DataDir (empty or
	// the default, a relative path) to Dir/data, Auth.KeysFile to Dir/keys.json when Keys are given.
	Config serverconfig.Config
	Keys   []Key
	Args   []string      // more flags, e.g. --enrich=false
	Wait   time.Duration // for /healthz; default 60s
	// Credential runs the server as another user (root only); the config and keys files are
	// then given to that user, so it can read them.
	Credential *syscall.Credential
}

// Proc is a running server.
type Proc struct {
	URL string
	// MetricsURL is the metrics listener (Config.MetricsListen; by default a free loopback
	// port, as the operator always renders one): /metrics without a key.
	MetricsURL string
	LogPath    string
	cmd        *exec.Cmd
	done       chan error
}

// Start writes the config and keys, starts the binary and waits until /healthz answers.
func Start(o Options) (*Proc, error) {
	cfg := o.Config
	for _, addr := range []*string{&cfg.Listen, &cfg.MetricsListen} {
		if *addr == "" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			*addr = ln.Addr().String()
			ln.Close()
		}
	}
	if cfg.DataDir == "" || cfg.DataDir == serverconfig.Default().DataDir {
		cfg.DataDir = filepath.Join(o.Dir, "data")
	}
	if len(o.Keys) > 0 {
		cfg.Auth.KeysFile = filepath.Join(o.Dir, "keys.json")
		b, _ := json.MarshalIndent(o.Keys, "", "  ")
		if err := writeFor(cfg.Auth.KeysFile, b, o.Credential); err != nil {
			return nil, err
		}
	}
	cfgPath := filepath.Join(o.Dir, "config.json")
	if err := writeFor(cfgPath, cfg.Marshal(), o.Credential); err != nil {
		return nil, err
	}
	p := &Proc{URL: localURL(cfg.Listen), MetricsURL: localURL(cfg.MetricsListen), LogPath: filepath.Join(o.Dir, "rag-server.log"), done: make(chan error, 1)}
	// Appended: a server started again on the same Dir (a restart) keeps the earlier log.
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(o.Binary, append([]string{"--config", cfgPath}, o.Args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: o.Credential}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()
	wait := o.Wait
	if wait == 0 {
		wait = 60 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("rag-server exited (%v):\n%s", err, p.LogTail())
		default:
		}
		if resp, err := http.Get(p.URL + "/healthz"); err == nil {
			resp.Body.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("rag-server did not answer /healthz in %s:\n%s", wait, p.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// localURL is the loopback URL of a listen address (":8080" and "0.0.0.0:8080" included).
func localURL(listen string) string {
	if strings.HasPrefix(listen, ":") || strings.HasPrefix(listen, "0.0.0.0:") {
		return "http://127.0.0.1:" + listen[strings.LastIndexByte(listen, ':')+1:]
	}
	return "http://" + listen
}

// writeFor writes a file only its owner can read: the test's user, or cred's when the server
// runs as another user. The directories above must let that user through (the caller's part).
func writeFor(path string, data []byte, cred *syscall.Credential) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	if cred != nil {
		return os.Chown(path, int(cred.Uid), int(cred.Gid))
	}
	return nil
}

// PID is the server's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL and waits: no shutdown code runs (a crash).
func (p *Proc) Kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits (SIGKILL after 30 s).
func (p *Proc) Stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		return errors.New("rag-server did not stop in 30s; killed")
	}
}

// LogTail is the end of the server's log.
func (p *Proc) LogTail() string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

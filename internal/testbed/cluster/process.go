package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// process is a component or helper running as a child process, logging to a file.
type process struct {
	name string
	path string
	args []string
	env  []string // nil: inherit

	logPath string
	cmd     *exec.Cmd
	log     *os.File
	done    chan struct{}
	mu      sync.Mutex
	err     error
}

func (p *process) start(logDir string) error {
	p.logPath = filepath.Join(logDir, p.name+".log")
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.log = f
	p.cmd = exec.Command(p.path, p.args...)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		if err == nil {
			err = fmt.Errorf("exit status 0")
		}
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// exitErr is nil while the process runs, else how it ended.
func (p *process) exitErr() error {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 10 s.
func (p *process) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	terminate(p.cmd.Process)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
	killGroup(p.cmd.Process)
	<-p.done
	_ = p.log.Close()
}

// kill ends the process group at once (SIGKILL), as a node failure or an OOM kill would.
func (p *process) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	killGroup(p.cmd.Process)
	<-p.done
	_ = p.log.Close()
}

// tail returns up to the last n bytes of a file, from a line start.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

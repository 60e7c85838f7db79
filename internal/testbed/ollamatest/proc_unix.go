//go:build unix

package ollamatest

import (
	"os"
	"syscall"
)

// sysProcAttr puts the server in its own process group, so runners it spawns can be killed
// with it even if the server itself dies first.
func sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(a)
	return a
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}

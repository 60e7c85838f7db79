//go:build unix

package cluster

import (
	"os"
	"syscall"
)

// sysProcAttr puts the child in its own process group (so stop reaches its children too) and,
// on Linux, has the kernel kill it when this process dies.
func sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(a)
	return a
}

func terminate(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGTERM) }

func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }

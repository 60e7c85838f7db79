package main

import (
	"os"
	"syscall"
)

// childProcAttr makes the kernel kill a child (Ollama's are handled by ollamatest) when the
// bench dies without stopping it.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

// maxRSSMiB is the peak resident set of an exited child (getrusage ru_maxrss, KiB on Linux).
func maxRSSMiB(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024
	}
	return 0
}

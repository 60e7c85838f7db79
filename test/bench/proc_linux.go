package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// childProcAttr makes the kernel kill a child (Ollama's are handled by ollamatest) when the
// bench dies without stopping it.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

// cpuSeconds is a live process's CPU time so far (utime + stime from /proc/<pid>/stat, in
// USER_HZ = 100 ticks per second); 0 when it cannot be read.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count fields after its closing parenthesis.
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest) // f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return 0
	}
	var utime, stime float64
	if _, err := fmt.Sscan(f[11], &utime); err != nil {
		return 0
	}
	if _, err := fmt.Sscan(f[12], &stime); err != nil {
		return 0
	}
	return (utime + stime) / 100
}

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

// rssMiB is a live process's resident set now (VmRSS), 0 when it cannot be read.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			var kib float64
			if _, err := fmt.Sscan(f[1], &kib); err == nil {
				return kib / 1024
			}
		}
	}
	return 0
}

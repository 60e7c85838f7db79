//go:build !linux

package main

import (
	"os"
	"syscall"
)

func childProcAttr() *syscall.SysProcAttr { return nil }

// cpuSeconds is not measured off Linux.
func cpuSeconds(int) float64 { return 0 }

// maxRSSMiB is not measured off Linux (ru_maxrss units differ by system).
func maxRSSMiB(*os.ProcessState) float64 { return 0 }

// rssMiB is not measured off Linux.
func rssMiB(int) float64 { return 0 }

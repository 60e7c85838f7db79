//go:build !linux

package postgres

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr) {}

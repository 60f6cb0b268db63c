//go:build !linux

package bench

import (
	"syscall"
	"time"
)

func childSysProcAttr() *syscall.SysProcAttr { return nil }

// processCPU is not measured off Linux.
func processCPU([]int) (time.Duration, bool) { return 0, false }

// machineBusy is not measured off Linux.
func machineBusy() (time.Duration, bool) { return 0, false }

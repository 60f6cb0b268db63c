package bench

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// childSysProcAttr makes the child die with the harness (a bench killed with
// SIGKILL must not leave a server running) and keeps it out of the
// terminal's process group, so Ctrl-C reaches the harness, which then stops
// the server in order.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// processCPU is the user plus system CPU time of this process and of pids
// (from /proc/PID/stat). ok is false when a figure cannot be read (not
// Linux, a process gone).
func processCPU(pids []int) (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, false
		}
		// The fields after "(comm)": state is the first, utime the 12th, stime the 13th.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if i < 0 || len(f) < 13 {
			return 0, false
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		total += time.Duration(ut+st) * time.Second / clockTicks
	}
	return total, true
}

// machineBusy is the CPU time all of the machine's CPUs have spent busy
// since boot (/proc/stat: user, nice, system and steal; interrupt time is
// left out, as it is charged to no process). ok is false when it cannot be
// read.
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return parseMachineBusy(string(line))
}

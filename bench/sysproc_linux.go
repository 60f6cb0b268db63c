package bench

import "syscall"

// childSysProcAttr makes the child die with the harness (a bench killed with
// SIGKILL must not leave a server running) and keeps it out of the
// terminal's process group, so Ctrl-C reaches the harness, which then stops
// the server in order.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

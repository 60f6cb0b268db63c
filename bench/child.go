package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverBin resolves the webhookops binary and checks that it has a `serve`
// command with the flags the harness uses.
func serverBin(ctx context.Context, bin string) (string, error) {
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrServerUnavailable, err)
		}
		bin = exe
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput()
	if err := parent.Err(); err != nil {
		// Cancelled by the caller: the help text was cut short, not wrong.
		return "", err
	}
	for _, flag := range []string{"--data-dir", "--ingest-addr", "--admin-addr", "--config"} {
		if !bytes.Contains(out, []byte(flag)) {
			return "", fmt.Errorf("%w: %s serve --help does not mention %s", ErrServerUnavailable, bin, flag)
		}
	}
	return bin, nil
}

// freeLoopbackUDPAddr is freeLoopbackAddr for a UDP port (the QUIC tunnel).
func freeLoopbackUDPAddr() (string, error) {
	// The tunnel listens on TCP with the same port number too: find one free
	// for both.
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			return addr, ln.Close()
		}
		if attempt == 20 {
			return "", err
		}
	}
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago (the child binds it; a race with another process is possible
// and shows as a failed start).
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// childSpec is how to start one server; keep it to restart the same server.
type childSpec struct {
	bin        string
	dataDir    string
	configPath string
	ingestAddr string
	adminAddr  string
	logPath    string
	logTo      io.Writer // extra copy of the output, may be nil
	extraArgs  []string  // appended to the serve command line
}

// newChildSpec prepares a data dir, config and ports under dir.
func newChildSpec(bin, dir, config string, logTo io.Writer) (childSpec, error) {
	cs := childSpec{
		bin:        bin,
		dataDir:    filepath.Join(dir, "data"),
		configPath: filepath.Join(dir, "webhookops.yaml"),
		logPath:    filepath.Join(dir, "server.log"),
		logTo:      logTo,
	}
	if err := os.MkdirAll(cs.dataDir, 0o700); err != nil {
		return cs, err
	}
	if err := os.WriteFile(cs.configPath, []byte(config), 0o600); err != nil {
		return cs, err
	}
	var err error
	if cs.ingestAddr, err = freeLoopbackAddr(); err != nil {
		return cs, err
	}
	if cs.adminAddr, err = freeLoopbackAddr(); err != nil {
		return cs, err
	}
	return cs, nil
}

// child is a running `webhookops serve`.
type child struct {
	spec    childSpec // zero for a process that is not serve
	cmd     *exec.Cmd
	logPath string
	started time.Time
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // set before exited is closed
}

func (cs childSpec) ingestURL() string { return "http://" + cs.ingestAddr }

// start launches the server; it does not wait for readiness.
func (cs childSpec) start() (*child, error) {
	args := append([]string{"serve",
		"--data-dir", cs.dataDir,
		"--ingest-addr", cs.ingestAddr,
		"--admin-addr", cs.adminAddr,
		"--config", cs.configPath,
		"--log-level", "warn",
	}, cs.extraArgs...)
	c, err := startProcess(cs.bin, args, cs.logPath, cs.logTo)
	if err != nil {
		return nil, err
	}
	c.spec = cs
	return c, nil
}

// startProcess starts bin with args, its output appended to logPath (and
// copied to logTo if set), and a goroutine that waits for it.
func startProcess(bin string, args []string, logPath string, logTo io.Writer) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	var out io.Writer = logf
	if logTo != nil {
		out = io.MultiWriter(logf, logTo)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childSysProcAttr()
	c := &child{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start %s %s: %w", bin, args[0], err)
	}
	go func() {
		c.waitErr = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// waitReady polls GET /readyz until it answers 200. It fails at once if the
// process exits, with the tail of its log.
func (c *child) waitReady(parent context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	url := "http://" + c.spec.adminAddr + "/readyz"
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("bench: server exited before ready (%v): %s", c.waitErr, c.logTail())
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return err
			}
			return fmt.Errorf("bench: server not ready after %v: %s", timeout, c.logTail())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits; after grace it kills.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("bench: server ignored SIGTERM for %v, killed", grace)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no log)"
	}
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(empty log)"
	}
	return string(b)
}

// procStatusKB reads a "Name:   1234 kB" field of /proc/PID/status.
func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != field {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		return strconv.ParseInt(v, 10, 64)
	}
	return 0, fmt.Errorf("bench: %s not in /proc/%d/status", field, pid)
}

var errNoTarget = errors.New("needs to start its own server; --target is not supported")

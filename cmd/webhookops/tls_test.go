package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webhookops/webhookops/cmd/webhookops/internal/tlstest"
	"golang.org/x/sys/unix"
)

// unsignedConfig is a config file of one source that takes unsigned
// posts and routes nowhere: enough to see the ingest handler answer.
func unsignedConfig(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "webhookops.yaml")
	if err := os.WriteFile(p, []byte("sources:\n  - slug: demo\n    provider: generic\n    verify: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// postOver posts one webhook through hc and returns the protocol it went
// over.
func postOver(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	resp, err := hc.Post(url, "application/json", strings.NewReader(`{"id":"evt_tls"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
	var out struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(body, &out) != nil || out.EventID == "" {
		t.Fatalf("POST %s: %s", url, body)
	}
	return resp.Proto
}

func servedSerial(t *testing.T, addr string, roots *tlstest.Root) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestServeTLSFromFiles: `serve --tls-cert/--tls-key` and
// `--admin-tls-cert/--admin-tls-key` serve HTTPS with HTTP/2, refuse TLS
// 1.1, and pick up a renewed certificate without a restart.
func TestServeTLSFromFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	root := tlstest.NewRoot(t)
	crt, key := filepath.Join(dir, "ingest.crt"), filepath.Join(dir, "ingest.key")
	acrt, akey := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	root.WriteLeaf(t, crt, key, 1, 90*24*time.Hour)
	root.WriteLeaf(t, acrt, akey, 100, 90*24*time.Hour)

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: root.Pool}, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	c := startServeOpts(t, bin, freeAddr(t), freeAddr(t), serveOpts{
		args: []string{"--data-dir", filepath.Join(dir, "data"), "--config", unsignedConfig(t, dir),
			"--tls-cert", crt, "--tls-key", key, "--admin-tls-cert", acrt, "--admin-tls-key", akey},
		admin: hc,
	})
	defer c.stop(t)

	if proto := postOver(t, hc, "https://"+c.ingest+"/in/demo"); proto != "HTTP/2.0" {
		t.Fatalf("ingest over %s, want HTTP/2.0", proto)
	}
	if got := servedSerial(t, c.admin, root); got != 100 {
		t.Fatalf("admin serves serial %d", got)
	}
	if _, err := tls.Dial("tcp", c.ingest, &tls.Config{RootCAs: root.Pool, ServerName: "localhost", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	if resp, err := http.Get("http://" + c.ingest + "/in/demo"); err == nil && resp.StatusCode < 400 {
		t.Fatalf("plain HTTP on the TLS port answered %d", resp.StatusCode)
	}

	root.WriteLeaf(t, crt, key, 2, 90*24*time.Hour)
	if got := servedSerial(t, c.ingest, root); got != 2 {
		t.Fatalf("after renewal the ingest listener serves serial %d, want 2", got)
	}
	hc.CloseIdleConnections()
	postOver(t, hc, "https://"+c.ingest+"/in/demo")
	if strings.Contains(c.log.String(), "plain HTTP") {
		t.Fatalf("TLS listeners warned about plain HTTP:\n%s", c.log)
	}
}

// TestServeACME: `serve --acme-domain` obtains a certificate from an ACME
// CA (Let's Encrypt's Pebble test CA, on loopback) by answering
// TLS-ALPN-01 on the ingest listener, serves it, and keeps it in the data
// dir for the next start.
func TestServeACME(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	const domain = "hooks.webhookops.test"
	dir := t.TempDir()
	ingest := freeAddr(t)
	ca := tlstest.Start(t, tlstest.Port(t, freeAddr(t)), tlstest.Port(t, ingest))
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.DirectoryCertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	c := startServeOpts(t, bin, ingest, freeAddr(t), serveOpts{
		args: []string{"--data-dir", data, "--config", unsignedConfig(t, dir),
			"--acme-domain", domain, "--acme-email", "ops@webhookops.test", "--acme-directory", ca.DirectoryURL},
		// The CA's directory has a certificate of its own, trusted here
		// the way an operator would trust a private CA.
		env: []string{"SSL_CERT_FILE=" + caFile},
	})
	defer c.stop(t)

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Roots, ServerName: domain},
		ForceAttemptHTTP2: true,
	}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := hc.Get("https://" + ingest + "/in/demo")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from the CA within a minute: %v\n%s", err, c.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if proto := postOver(t, hc, "https://"+ingest+"/in/demo"); proto != "HTTP/2.0" {
		t.Fatalf("ingest over %s", proto)
	}
	entries, _ := os.ReadDir(filepath.Join(data, "acme"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !strings.Contains(strings.Join(names, " "), domain) {
		t.Fatalf("data dir acme/ holds %v, want the certificate for %s", names, domain)
	}
}

// TestPlainListenerWarnsOnce: plain ingest and admin listeners on all
// interfaces log one warning each (loopback ones none: see
// TestStartupLineShowsRealBind), and the ready line names their real bind
// addresses and scheme (a 0.0.0.0 admin used to show as localhost, and a
// plain listener as https once serving had begun). The text log written to
// a pipe has no colour codes.
func TestPlainListenerWarnsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	_, adminPort, _ := net.SplitHostPort(freeAddr(t))
	c := startServeOpts(t, bin, "0.0.0.0:"+port, "0.0.0.0:"+adminPort, serveOpts{
		args: []string{"--data-dir", filepath.Join(dir, "a"), "--log-format", "text", "--log-level", "info"},
	})
	c.stop(t)
	for _, l := range []string{"ingest", "admin"} {
		if n := strings.Count(c.log.String(), l+" listener is plain HTTP"); n != 1 {
			t.Fatalf("%d plain-HTTP warnings for the %s listener, want 1:\n%s", n, l, c.log)
		}
	}
	// Go binds 0.0.0.0 on the "tcp" network as the dual-stack [::].
	wild := regexp.MustCompile(`ingest=http://(0\.0\.0\.0|\[::\]):` + port + `/in/\{source\} admin=http://(0\.0\.0\.0|\[::\]):` + adminPort + ` `)
	if !wild.MatchString(c.log.String()) {
		t.Fatalf("the ready line does not show the plain wildcard binds (ports %s and %s):\n%s", port, adminPort, c.log)
	}
	if strings.Contains(c.log.String(), "\x1b[") {
		t.Fatalf("colour codes in a piped log:\n%q", c.log)
	}
}

// TestLogColour: colours on a terminal, none with NO_COLOR set, none in
// a pipe (TestPlainListenerWarnsOnce).
func TestLogColour(t *testing.T) {
	for _, tc := range []struct {
		term    bool
		noColor string
		want    bool
	}{
		{true, "", true}, {true, "1", false}, {true, "0", false}, {false, "", false}, {false, "1", false},
	} {
		if got := useColor(tc.term, tc.noColor); got != tc.want {
			t.Errorf("useColor(%v, %q) = %v", tc.term, tc.noColor, got)
		}
	}
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	for _, tc := range []struct {
		name string
		env  []string
		want bool
	}{
		{"terminal", []string{"NO_COLOR="}, true},
		{"NO_COLOR", []string{"NO_COLOR=1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ptm, pts := openPTY(t)
			var out bytes.Buffer
			var wg sync.WaitGroup
			wg.Go(func() { io.Copy(&out, ptm) }) // ends with EIO once every slave end is closed
			c := startServeOpts(t, bin, freeAddr(t), freeAddr(t), serveOpts{
				args:   []string{"--data-dir", t.TempDir(), "--log-format", "text", "--log-level", "info"},
				env:    tc.env,
				stderr: pts,
			})
			c.stop(t)
			pts.Close()
			wg.Wait()
			ptm.Close()
			if !strings.Contains(out.String(), "webhookops ready") {
				t.Fatalf("no start-up line on the terminal:\n%q", out.String())
			}
			if got := strings.Contains(out.String(), "\x1b["); got != tc.want {
				t.Fatalf("colour codes present=%v, want %v:\n%q", got, tc.want, out.String())
			}
		})
	}
}

// openPTY opens a pseudo-terminal pair: the child writes to pts, the test
// reads ptm.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptm, pts
}

// TestStartupLineShowsRealBind: an admin listener on 0.0.0.0 is announced
// as 0.0.0.0 (it was shown as localhost), and a plain one beyond loopback
// draws one warning; with TLS or on loopback, none.
func TestStartupLineShowsRealBind(t *testing.T) {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if got, want := bindURL(false, ln), "http://0.0.0.0:"+port; got != want {
		t.Errorf("bindURL = %q, want %q", got, want)
	}
	if got, want := bindURL(true, ln), "https://0.0.0.0:"+port; got != want {
		t.Errorf("bindURL with TLS = %q, want %q", got, want)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	warnIfPlain(log, "admin", false, ln, "advice")
	if n := strings.Count(buf.String(), "level=WARN"); n != 1 || !strings.Contains(buf.String(), "0.0.0.0:"+port) {
		t.Errorf("plain admin on 0.0.0.0: %d warnings: %s", n, buf.String())
	}
	buf.Reset()
	warnIfPlain(log, "admin", true, ln, "advice")
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	warnIfPlain(log, "admin", false, lo, "advice")
	if buf.Len() != 0 {
		t.Errorf("TLS or loopback warned: %s", buf.String())
	}
}

// TestServeTLSRefusalOverCap: a connection over --max-connections on a TLS
// listener is closed without a word; the plain-HTTP 503 the limiter writes
// on a clear listener would be garbage inside TLS.
func TestServeTLSRefusalOverCap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server as a child process")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	root := tlstest.NewRoot(t)
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	root.WriteLeaf(t, crt, key, 1, 90*24*time.Hour)
	c := startServe(t, bin, freeAddr(t), freeAddr(t), "--data-dir", filepath.Join(dir, "data"),
		"--tls-cert", crt, "--tls-key", key, "--max-connections", "1")
	defer c.stop(t)
	held, err := tls.Dial("tcp", c.ingest, &tls.Config{RootCAs: root.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	over, err := net.DialTimeout("tcp", c.ingest, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(over)
	if len(got) != 0 {
		t.Fatalf("a refused TLS connection was sent %q", got)
	}
}

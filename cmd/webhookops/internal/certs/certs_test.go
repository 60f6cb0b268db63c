package certs

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookops/webhookops/cmd/webhookops/internal/tlstest"
)

func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Settings
		err  string // substring; "" is valid
	}{
		{"plain", Settings{}, ""},
		{"files", Settings{CertFile: "c", KeyFile: "k"}, ""},
		{"cert without key", Settings{CertFile: "c"}, "--tls-cert and --tls-key go together"},
		{"key without cert", Settings{KeyFile: "k"}, "--tls-cert and --tls-key go together"},
		{"admin half", Settings{AdminCertFile: "c"}, "--admin-tls-cert and --admin-tls-key"},
		{"admin files", Settings{AdminCertFile: "c", AdminKeyFile: "k"}, ""},
		{"acme", Settings{ACMEDomains: []string{"hooks.example.com"}, ACMEEmail: "ops@example.com", ACMEHTTPAddr: ":80"}, ""},
		{"acme and files", Settings{ACMEDomains: []string{"hooks.example.com"}, CertFile: "c", KeyFile: "k"}, "choose files or ACME"},
		{"acme with admin files", Settings{ACMEDomains: []string{"hooks.example.com"}, AdminCertFile: "c", AdminKeyFile: "k"}, ""},
		{"email alone", Settings{ACMEEmail: "a@b.c"}, "--acme-email needs --acme-domain"},
		{"http alone", Settings{ACMEHTTPAddr: ":80"}, "--acme-http needs --acme-domain"},
		{"directory alone", Settings{ACMEDirectory: "https://ca/dir"}, "--acme-directory needs --acme-domain"},
		{"bad email", Settings{ACMEDomains: []string{"a.example"}, ACMEEmail: "nobody"}, "not an email"},
		{"http directory", Settings{ACMEDomains: []string{"a.example"}, ACMEDirectory: "http://ca/dir"}, "must be an https:// URL"},
		{"wildcard", Settings{ACMEDomains: []string{"*.example.com"}}, "wildcards need DNS-01"},
		{"one label", Settings{ACMEDomains: []string{"localhost"}}, "two labels"},
		{"ip", Settings{ACMEDomains: []string{"10.0.0.1"}}, "an IP address"},
		{"port", Settings{ACMEDomains: []string{"a.example:443"}}, "no port"},
		{"url", Settings{ACMEDomains: []string{"https://a.example"}}, "no port or scheme"},
		{"underscore", Settings{ACMEDomains: []string{"a_b.example"}}, "bad character"},
		{"dash label", Settings{ACMEDomains: []string{"-a.example"}}, "bad label"},
		{"empty", Settings{ACMEDomains: []string{""}}, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "127.0.0.2:1": true,
		"0.0.0.0:8080": false, "[::]:8080": false, "10.1.2.3:80": false,
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := IsLoopback(a); got != want {
			t.Errorf("IsLoopback(%s) = %v, want %v", addr, got, want)
		}
	}
}

// syncBuf is a log sink the server goroutines write to.
type syncBuf struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveTLS runs an HTTP server on loopback with cfg and returns its
// address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	return listenOn(t, "127.0.0.1:0", cfg).String()
}

// listenOn runs an HTTP server with cfg on addr; it answers with the
// protocol the request came over.
func listenOn(t *testing.T, addr string, cfg *tls.Config) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto)
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr()
}

// servedSerial makes a fresh TLS connection and returns the serial of the
// certificate it was shown, verified against roots for serverName.
func servedSerial(t *testing.T, addr string, cfg *tls.Config) int64 {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestReloaderServesChangedFiles: a renewal is picked up on the next
// handshake, without a restart; a half-written pair keeps the old
// certificate in service and is reported once.
func TestReloaderServesChangedFiles(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	root := tlstest.NewRoot(t)
	root.WriteLeaf(t, certPath, keyPath, 1, 90*24*time.Hour)
	logs := &syncBuf{}
	r, err := NewReloader(certPath, keyPath, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.Config())
	client := &tls.Config{RootCAs: root.Pool, ServerName: "localhost"}
	if got := servedSerial(t, addr, client); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}

	root.WriteLeaf(t, certPath, keyPath, 2, 90*24*time.Hour)
	if got := servedSerial(t, addr, client); got != 2 {
		t.Fatalf("after renewal: serial %d, want 2", got)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Fatalf("no reload logged:\n%s", logs)
	}

	// The certificate written, its key not yet: the old pair stays.
	root.WriteLeaf(t, certPath, "", 3, 90*24*time.Hour)
	for range 3 {
		if got := servedSerial(t, addr, client); got != 2 {
			t.Fatalf("with a mismatched key: serial %d, want 2 kept", got)
		}
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Fatalf("mismatched pair reported %d times, want once:\n%s", n, logs)
	}

	// A file missing for a moment: still served.
	if err := os.Rename(keyPath, keyPath+".moved"); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, client); got != 2 {
		t.Fatalf("with the key missing: serial %d, want 2 kept", got)
	}
	if !strings.Contains(logs.String(), "unreadable") {
		t.Fatalf("missing file not reported:\n%s", logs)
	}

	root.WriteLeaf(t, certPath, keyPath, 4, 90*24*time.Hour)
	if got := servedSerial(t, addr, client); got != 4 {
		t.Fatalf("after a complete pair: serial %d, want 4", got)
	}
}

func TestReloaderRefusesBadStart(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := NewReloader(certPath, keyPath, nil); err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("missing files: %v", err)
	}
	root := tlstest.NewRoot(t)
	root.WriteLeaf(t, certPath, keyPath, 1, time.Hour)
	root.WriteLeaf(t, certPath, "", 2, time.Hour) // key of another certificate
	if _, err := NewReloader(certPath, keyPath, nil); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Fatalf("mismatched pair: %v", err)
	}
}

func TestReloaderWarnsBeforeExpiry(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	tlstest.NewRoot(t).WriteLeaf(t, certPath, keyPath, 1, 48*time.Hour)
	logs := &syncBuf{}
	if _, err := NewReloader(certPath, keyPath, slog.New(slog.NewTextHandler(logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "expires soon") {
		t.Fatalf("no expiry warning:\n%s", logs)
	}
}

// TestTLSPolicy: TLS 1.1 is refused, 1.2 and 1.3 work, HTTP/2 is
// negotiated.
func TestTLSPolicy(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	root := tlstest.NewRoot(t)
	root.WriteLeaf(t, certPath, keyPath, 1, 90*24*time.Hour)
	r, err := NewReloader(certPath, keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.Config())
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: root.Pool, ServerName: "localhost", MinVersion: v, MaxVersion: v})
		if err == nil {
			t.Fatalf("%s accepted", tls.VersionName(v))
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: root.Pool, ServerName: "localhost", MinVersion: v, MaxVersion: v})
		if err != nil {
			t.Fatalf("%s: %v", tls.VersionName(v), err)
		}
		c.Close()
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: root.Pool}, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
		t.Fatalf("proto %s (server saw %s), want HTTP/2", resp.Proto, body)
	}
}

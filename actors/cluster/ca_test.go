package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"strings"
	"testing"
)

// Two members' certificates from one CA complete a mutual-TLS handshake
// for the address the other dials; a certificate from another CA does not.
func TestClusterCAMutualTLS(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	if err := CreateCA(dir); err != nil {
		t.Fatal(err)
	}
	if err := CreateCA(dir); err == nil {
		t.Fatal("CreateCA overwrote an existing CA")
	}
	if err := IssueNode(dir, 1, []string{"127.0.0.1", "node1.internal"}); err != nil {
		t.Fatal(err)
	}
	if err := IssueNode(dir, 2, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := CreateCA(other); err != nil {
		t.Fatal(err)
	}
	if err := IssueNode(other, 3, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, keyPath := NodeFiles(dir, 1); mode(t, keyPath) != 0o600 {
		t.Fatalf("node key mode %o", mode(t, keyPath))
	}
	caPath, _ := CAFiles(dir)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caPath)
	pool.AppendCertsFromPEM(caPEM)
	pair := func(d string, id uint64) tls.Certificate {
		c, k := NodeFiles(d, id)
		p, err := tls.LoadX509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair(dir, 1)}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	dial := func(cert tls.Certificate) error {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = io.ReadAll(c)
		return err
	}
	if err := dial(pair(dir, 2)); err != nil {
		t.Fatalf("member 2 to member 1: %v", err)
	}
	if err := dial(pair(other, 3)); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	if err := IssueNode(t.TempDir(), 4, []string{"h"}); err == nil || !strings.Contains(err.Error(), "no CA") {
		t.Fatalf("IssueNode without a CA = %v", err)
	}
}

func mode(t *testing.T, p string) os.FileMode {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestCheckTransport(t *testing.T) {
	loop := map[uint64]string{1: "127.0.0.1:1", 2: "[::1]:2"}
	remote := map[uint64]string{1: "127.0.0.1:1", 2: "10.0.0.2:2"}
	named := map[uint64]string{1: "localhost:1"}
	all := TLSFiles{CA: "ca", Cert: "c", Key: "k"}
	tests := []struct {
		name    string
		members map[uint64]string
		files   TLSFiles
		ok      bool
	}{
		{"plain on loopback", loop, TLSFiles{}, true},
		{"plain to another machine", remote, TLSFiles{}, false},
		{"plain to a name (could resolve anywhere)", named, TLSFiles{}, false},
		{"TLS to another machine", remote, all, true},
		{"half the TLS files", remote, TLSFiles{CA: "ca"}, false},
	}
	for _, tt := range tests {
		if err := CheckTransport(tt.members, tt.files); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

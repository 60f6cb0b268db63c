package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// A small cluster CA: members talk raft over mutual TLS with certificates
// it signs. The CA key signs node certificates only; keep it off the nodes.
//
//	<dir>/ca.pem, <dir>/ca-key.pem           the CA (key mode 0600)
//	<dir>/node<id>.pem, <dir>/node<id>-key.pem a member's certificate for its hosts

// CAFiles are the file names in a cluster CA directory.
func CAFiles(dir string) (cert, key string) {
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
}

// NodeFiles are a member's certificate and key in a cluster CA directory.
func NodeFiles(dir string, id uint64) (cert, key string) {
	n := "node" + strconv.FormatUint(id, 10)
	return filepath.Join(dir, n+".pem"), filepath.Join(dir, n+"-key.pem")
}

// CreateCA writes a new CA into dir. It refuses to overwrite one.
func CreateCA(dir string) error {
	certPath, keyPath := CAFiles(dir)
	if _, err := os.Stat(keyPath); err == nil {
		return fmt.Errorf("cluster: %s exists; a new CA would orphan every node certificate", keyPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "webhookops cluster CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return writePair(certPath, keyPath, der, key)
}

// IssueNode signs a certificate for member id, valid as client and server
// for hosts (IP addresses or DNS names: whatever the others dial in
// --initial-members).
func IssueNode(dir string, id uint64, hosts []string) error {
	if id == 0 || len(hosts) == 0 {
		return errors.New("cluster: a node certificate needs a node id and at least one host")
	}
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "webhookops node " + strconv.FormatUint(id, 10)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	certPath, keyPath := NodeFiles(dir, id)
	return writePair(certPath, keyPath, der, key)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := CAFiles(dir)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: no CA in %s (create one first): %w", dir, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("cluster: %s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: %s: %w", certPath, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: %s: %w", keyPath, err)
	}
	return cert, key, nil
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// TLSFiles are a member's mutual-TLS settings for raft traffic.
type TLSFiles struct {
	CA, Cert, Key string
}

func (f TLSFiles) set() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// CheckTransport refuses plain raft traffic off loopback: payloads and
// sealed secrets cross between members, so any member address that is not
// a loopback IP needs all three TLS files.
func CheckTransport(members map[uint64]string, f TLSFiles) error {
	if f.set() {
		if f.CA == "" || f.Cert == "" || f.Key == "" {
			return errors.New("cluster TLS needs a CA, a certificate and a key")
		}
		return nil
	}
	for id, addr := range members {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("member %d (%s) is not on loopback: raft between machines runs over mutual TLS only; "+
				"create certificates with `webhookops cluster ca` and `webhookops cluster cert`", id, addr)
		}
	}
	return nil
}

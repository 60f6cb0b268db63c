package tunnelproto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names LoadOrCreateCertificate uses inside its directory.
const (
	CertFileName = "tunnel-cert.pem"
	KeyFileName  = "tunnel-key.pem"
)

// LoadOrCreateCertificate loads the tunnel server's certificate from dir, or
// on first start generates a self-signed ECDSA P-256 certificate and writes
// it there (mode 0600, written to a temporary file and renamed). It returns
// the certificate and its fingerprint, which goes into the agent's
// enrollment command. If only one of the two files exists it refuses rather
// than silently replacing the identity agents have pinned.
func LoadOrCreateCertificate(dir string) (tls.Certificate, string, error) {
	certPath := filepath.Join(dir, CertFileName)
	keyPath := filepath.Join(dir, KeyFileName)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		return LoadCertificateFiles(certPath, keyPath)
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
	case certErr == nil || keyErr == nil:
		return tls.Certificate{}, "", fmt.Errorf("tunnelproto.LoadOrCreateCertificate: only one of %s and %s exists; restore the other or remove both to generate a new identity (agents must then be re-enrolled)", certPath, keyPath)
	default:
		return tls.Certificate{}, "", fmt.Errorf("tunnelproto.LoadOrCreateCertificate: %w", errors.Join(certErr, keyErr))
	}
	certPEM, keyPEM, err := generateCertificate()
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("tunnelproto.LoadOrCreateCertificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("tunnelproto.LoadOrCreateCertificate: %w", err)
	}
	// Key first: a crash between the two writes leaves a key without a
	// certificate, which the next start reports instead of overwriting.
	if err := writeFileAtomic(keyPath, keyPEM); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("tunnelproto.LoadOrCreateCertificate: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("tunnelproto.LoadOrCreateCertificate: %w", err)
	}
	return LoadCertificateFiles(certPath, keyPath)
}

// LoadCertificateFiles loads a PEM certificate and key given by the operator
// and returns the certificate with its fingerprint.
func LoadCertificateFiles(certFile, keyFile string) (tls.Certificate, string, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("tunnelproto.LoadCertificateFiles: %w", err)
	}
	return cert, Fingerprint(cert), nil
}

// Fingerprint formats the SHA-256 of the certificate's leaf (DER) as
// "sha256:<lowercase hex>".
func Fingerprint(cert tls.Certificate) string {
	if len(cert.Certificate) == 0 {
		return ""
	}
	return fingerprintDER(cert.Certificate[0])
}

func fingerprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseFingerprint parses "sha256:<hex>" (hex in either case, colons between
// bytes allowed) into the 32-byte digest.
func ParseFingerprint(s string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "sha256:")
	if !ok {
		return out, fmt.Errorf("tunnelproto.ParseFingerprint: %w: want sha256:<64 hex digits>, got %q", ErrInvalidConfig, s)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(rest, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return out, fmt.Errorf("tunnelproto.ParseFingerprint: %w: want sha256:<64 hex digits>, got %q", ErrInvalidConfig, s)
	}
	copy(out[:], b)
	return out, nil
}

// pinVerifier returns a VerifyPeerCertificate callback that accepts exactly
// the certificate whose leaf hashes to pin. Chains, names and expiry are not
// checked: the pin is the trust decision, made at enrollment.
func pinVerifier(pin [sha256.Size]byte) func([][]byte, [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return ErrPinMismatch
		}
		sum := sha256.Sum256(rawCerts[0])
		if subtle.ConstantTimeCompare(sum[:], pin[:]) != 1 {
			return fmt.Errorf("%w: got %s", ErrPinMismatch, fingerprintDER(rawCerts[0]))
		}
		return nil
	}
}

func generateCertificate() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "webhookops tunnel"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0), // pinned, not chained: expiry would only strand agents
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

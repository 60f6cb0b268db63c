package wal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// EnvSecretKey names the environment variable that may carry the 64-hex-char
// key sealing secrets at rest, instead of <data-dir>/secret.key.
const EnvSecretKey = "WEBHOOKOPS_SECRET_KEY"

const sealedPrefix = "sealed:v1:"

// sealer encrypts secrets at rest with AES-256-GCM.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain string) string {
	if plain == "" {
		return ""
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("wal: no randomness: " + err.Error())
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), nil))
}

func (s *sealer) open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	raw, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", fmt.Errorf("%w: secret is not sealed", ErrCorrupt)
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fmt.Errorf("%w: sealed secret does not decode", ErrCorrupt)
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], nil)
	if err != nil {
		return "", fmt.Errorf("wal: secret does not open with this key (wrong secret.key or %s?)", EnvSecretKey)
	}
	return string(plain), nil
}

// loadOrCreateKey reads the sealing key from the environment or from path,
// creating path with mode 0600 on first start.
func loadOrCreateKey(path string) ([]byte, error) {
	if v := os.Getenv(EnvSecretKey); v != "" {
		k, err := hex.DecodeString(strings.TrimSpace(v))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s must be 64 hex characters (32 bytes)", EnvSecretKey)
		}
		return k, nil
	}
	k, err := ReadSecretKeyFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	k = make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, WriteSecretKeyFile(path, k)
}

// ReadSecretKeyFile reads a sealing key file: 64 hex characters, readable
// by its owner only.
func ReadSecretKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("%s must hold 64 hex characters", path)
	}
	if fi, serr := os.Stat(path); serr == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	return k, nil
}

// WriteSecretKeyFile creates path, which must not exist, with mode 0600
// holding key, and syncs it.
func WriteSecretKeyFile(path string, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

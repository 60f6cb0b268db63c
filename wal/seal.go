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

	"github.com/cockroachdb/pebble/v2"
)

// EnvSecretKey names the environment variable that may carry the 64-hex-char
// key sealing secrets at rest, instead of <data-dir>/secret.key.
const EnvSecretKey = "WEBHOOKOPS_SECRET_KEY"

// Sealed values: "sealed:v2:" + base64(nonce || AES-256-GCM(plain)), with
// associated data naming the record and field it belongs to (seal.ad), so a
// sealed value copied into another record or field does not open. v1 values
// (no associated data) are from before; Open rewrites them as v2 once and
// from then on refuses v1.
const (
	sealedPrefixV1 = "sealed:v1:"
	sealedPrefix   = "sealed:v2:"
)

// sealer encrypts secrets at rest with AES-256-GCM.
type sealer struct {
	aead cipher.AEAD
	v2   bool // the store is migrated: v1 values are refused
}

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

// ad is the associated data of a sealed field: the record's kind and key
// and the field's name.
func ad(kind, key, field string) []byte {
	return []byte("webhookops seal\x00" + kind + "\x00" + key + "\x00" + field)
}

func (s *sealer) seal(plain string, ad []byte) string {
	if plain == "" {
		return ""
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("wal: no randomness: " + err.Error())
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), ad))
}

func (s *sealer) open(sealed string, ad []byte) (string, error) {
	if sealed == "" {
		return "", nil
	}
	raw, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		if raw, ok = strings.CutPrefix(sealed, sealedPrefixV1); !ok {
			return "", fmt.Errorf("%w: secret is not sealed", ErrCorrupt)
		}
		if s.v2 {
			return "", fmt.Errorf("%w: a v1-sealed secret in a store sealed with v2 (copied in from elsewhere?)", ErrCorrupt)
		}
		ad = nil
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fmt.Errorf("%w: sealed secret does not decode", ErrCorrupt)
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], ad)
	if err != nil {
		return "", fmt.Errorf("wal: secret does not open with this key for this record (wrong secret.key or %s, or moved from another record)", EnvSecretKey)
	}
	return string(plain), nil
}

func isSealed(v string) bool {
	return strings.HasPrefix(v, sealedPrefix) || strings.HasPrefix(v, sealedPrefixV1)
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

// migrateSeals rewrites every sealed config record in the v2 format
// (associated data) once, in one synced batch with the marker, and from
// then on refuses v1 values. Secret header values stored in clear by
// earlier versions are sealed by the same rewrite.
func (db *DB) migrateSeals() error {
	k := []byte{prefixMeta, 'S'}
	v, err := db.get(k)
	switch {
	case err == nil && string(v) == "2":
		db.sealer.v2 = true
		return nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	srcs, err := db.Sources()
	if err != nil {
		return err
	}
	dests, err := db.Destinations()
	if err != nil {
		return err
	}
	agents, err := db.Agents()
	if err != nil {
		return err
	}
	b := db.NewBatch()
	defer b.Discard()
	for _, s := range srcs {
		if err := b.PutSource(s); err != nil {
			return err
		}
	}
	for _, d := range dests {
		if err := b.PutDestination(d); err != nil {
			return err
		}
	}
	for _, a := range agents {
		if err := b.PutAgent(a); err != nil {
			return err
		}
	}
	b.b.Set(k, []byte("2"), nil)
	if err := db.pdb.Apply(b.b, pebble.Sync); err != nil {
		return err
	}
	db.sealer.v2 = true
	return nil
}

package cluster

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/webhookops/webhookops/wal"
)

// The cluster sealing key.
//
// Each member seals secrets at rest in its own store with its own key
// (wal's secret.key). What leaves a member (a metadata entry in the raft
// log, on every member's disk and on the wire; a snapshot of the metadata
// shard) is sealed as a whole with the cluster sealing key instead:
// AES-256-GCM, a fresh nonce per entry, the entry's header as associated
// data. Every member is given the same key (`cluster ca` writes seal.key
// beside the CA; `cluster seal-key` makes one on its own), so any member
// opens what another sealed, and a member applying a change seals its
// secrets again with its own store key. Each entry names the key's id (8
// bytes of a hash of it, which says nothing of the key); the metadata
// shard records the id of the first entry it applies, and a member whose
// key has another id refuses to start (or, new and not knowing the id yet,
// stops at the first entry it cannot open, without applying it).

// SealKeyName is the sealing key's file name in a cluster CA directory.
const SealKeyName = "seal.key"

// SealKey is a loaded cluster sealing key.
type SealKey struct {
	id   []byte
	aead cipher.AEAD
}

const sealKeyIDLen = 8

// NewSealKey makes a sealing key of 32 raw bytes.
func NewSealKey(raw []byte) (*SealKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("cluster: a sealing key is 32 bytes, got %d", len(raw))
	}
	blk, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(append([]byte("webhookops cluster seal key id\x00"), raw...))
	return &SealKey{id: h[:sealKeyIDLen], aead: aead}, nil
}

// LoadSealKey reads a key file (64 hex characters, mode 0600).
func LoadSealKey(path string) (*SealKey, error) {
	raw, err := wal.ReadSecretKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster sealing key: %w", err)
	}
	return NewSealKey(raw)
}

// CreateSealKey writes a new random key to path, which must not exist.
func CreateSealKey(path string) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := wal.WriteSecretKeyFile(path, raw); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cluster: %s exists; a new key would not open what the old one sealed", path)
		}
		return err
	}
	return nil
}

// ID names the key (hex), never revealing it.
func (k *SealKey) ID() string { return hex.EncodeToString(k.id) }

func (k *SealKey) is(id []byte) bool { return bytes.Equal(k.id, id) }

// seal appends nonce || AES-GCM(plain, ad) to dst.
func (k *SealKey) seal(dst, ad, plain []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("cluster: no randomness: " + err.Error())
	}
	dst = append(dst, nonce...)
	return k.aead.Seal(dst, nonce, plain, ad)
}

var errSealOpen = errors.New("cluster: sealed data does not open with this key")

func (k *SealKey) open(ad, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, errSealOpen
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, errSealOpen
	}
	return plain, nil
}

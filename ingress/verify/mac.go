package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"sync"
)

const (
	macSize = sha256.Size

	// maxCandidates bounds the signatures one request may offer. Providers
	// send one per active secret (two during a rotation); the bound keeps a
	// hostile header from making us compare thousands of entries per secret.
	maxCandidates = 16

	// maxRetained bounds the scratch buffers a pooled macer keeps, so one huge
	// webhook-id does not pin memory in the pool.
	maxRetained = 1 << 10

	whsecPrefix = "whsec_"
)

// macer computes HMAC-SHA256 without allocating. crypto/hmac allocates about
// six objects per key (hmac.New) and cannot be re-keyed, and every request
// may bring a different set of secrets; so we run the RFC 2104 construction
// on a pooled SHA-256 state instead. The tests and fuzz targets check it
// against crypto/hmac.
//
// A macer also holds the parsed request: the bytes signed before the body and
// the candidate signatures the request offers.
type macer struct {
	h     hash.Hash
	block [sha256.BlockSize]byte // key, zero-padded to one block
	pad   [sha256.BlockSize]byte // block ^ ipad, then block ^ opad
	inner [macSize]byte
	sum   [macSize]byte

	key    []byte // scratch: decoded whsec_ key
	b64    []byte // scratch: base64 input copied from a header string
	prefix []byte // signed bytes preceding the body
	cands  [][macSize]byte
}

var macPool = sync.Pool{New: func() any { return &macer{h: sha256.New()} }}

func getMacer() *macer {
	m := macPool.Get().(*macer)
	m.prefix = m.prefix[:0]
	m.cands = m.cands[:0]
	return m
}

// putMacer wipes everything derived from a secret before pooling.
func putMacer(m *macer) {
	clear(m.block[:])
	clear(m.pad[:])
	clear(m.inner[:])
	clear(m.sum[:])
	clear(m.key[:cap(m.key)])
	m.h.Reset()
	if cap(m.prefix) > maxRetained {
		m.prefix = nil
	}
	if cap(m.b64) > maxRetained {
		m.b64 = nil
	}
	macPool.Put(m)
}

// mac returns HMAC-SHA256(key, prefix || body). The result aliases m.sum and
// is valid until the next call.
func (m *macer) mac(key, prefix, body []byte) []byte {
	clear(m.block[:])
	if len(key) > sha256.BlockSize {
		d := sha256.Sum256(key)
		copy(m.block[:], d[:])
	} else {
		copy(m.block[:], key)
	}
	for i, b := range m.block {
		m.pad[i] = b ^ 0x36
	}
	m.h.Reset()
	m.h.Write(m.pad[:])
	m.h.Write(prefix)
	m.h.Write(body)
	inner := m.h.Sum(m.inner[:0])
	for i, b := range m.block {
		m.pad[i] = b ^ 0x5c
	}
	m.h.Reset()
	m.h.Write(m.pad[:])
	m.h.Write(inner)
	return m.h.Sum(m.sum[:0])
}

// match reports whether any usable secret signs prefix||body to one of the
// candidates. With whsec set, secrets are mapped through the Standard
// Webhooks key rule first.
func (m *macer) match(secrets [][]byte, whsec bool, body []byte) bool {
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		key := s
		if whsec {
			key = m.standardKey(s)
		}
		sum := m.mac(key, m.prefix, body)
		for i := range m.cands {
			if hmac.Equal(sum, m.cands[i][:]) {
				return true
			}
		}
	}
	return false
}

// standardKey applies the Standard Webhooks secret rule into m.key.
func (m *macer) standardKey(secret []byte) []byte {
	if len(secret) <= len(whsecPrefix) || string(secret[:len(whsecPrefix)]) != whsecPrefix {
		return secret
	}
	k, err := base64.StdEncoding.AppendDecode(m.key[:0], secret[len(whsecPrefix):])
	m.key = k
	if err != nil || len(k) == 0 {
		return secret
	}
	return k
}

// standardKey is the allocating form used by the signing helpers.
func standardKey(secret []byte) []byte {
	if len(secret) <= len(whsecPrefix) || string(secret[:len(whsecPrefix)]) != whsecPrefix {
		return secret
	}
	k, err := base64.StdEncoding.DecodeString(string(secret[len(whsecPrefix):]))
	if err != nil || len(k) == 0 {
		return secret
	}
	return k
}

// addHex decodes a 64-digit hex MAC into a new candidate. It reports false,
// adding nothing, if s is not exactly that or the candidate list is full.
func (m *macer) addHex(s string) bool {
	if len(s) != 2*macSize || len(m.cands) == maxCandidates {
		return false
	}
	var c [macSize]byte
	for i := range c {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		c[i] = hi<<4 | lo
	}
	m.cands = append(m.cands, c)
	return true
}

// addBase64 decodes a standard, padded base64 MAC into a new candidate.
func (m *macer) addBase64(s string) bool {
	if len(s) != base64.StdEncoding.EncodedLen(macSize) || len(m.cands) == maxCandidates {
		return false
	}
	m.b64 = append(m.b64[:0], s...)
	var c [macSize + 1]byte // DecodedLen(44) is 33
	n, err := base64.StdEncoding.Decode(c[:], m.b64)
	if err != nil || n != macSize {
		return false
	}
	m.cands = append(m.cands, [macSize]byte(c[:macSize]))
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

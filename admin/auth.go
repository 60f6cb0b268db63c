package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal/model"

	"github.com/webhookops/webhookops/wal"
)

// Token roles.
const (
	// RoleAdmin may do everything.
	RoleAdmin = api.RoleAdmin
	// RoleRead may read everything (GET) and scrape /metrics, and change
	// nothing.
	RoleRead = api.RoleRead
)

// TokenPrefix starts every token this package makes, so a leaked one is
// recognisable by secret scanners.
const TokenPrefix = "whops_"

// BootstrapTokenName names the token given by --admin-token.
const BootstrapTokenName = "bootstrap"

// InitialTokenName names the token a node makes on its first start when
// no --admin-token is given.
const InitialTokenName = "initial"

// Token is an API token as stored: its hash, never the token itself.
type Token struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Hash      string    `json:"hash,omitempty"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Wire is the token as the API shows it: without its hash.
func (t Token) Wire() api.Token {
	return api.Token{Name: t.Name, Role: t.Role, Prefix: t.Prefix, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy}
}

// principal is who a request acts as.
type principal struct {
	name string
	role string
	// bearer is the token presented: a cluster member forwards a request
	// it cannot carry out to the member that can with the caller's own
	// credential (peers.go). Never logged, never stored.
	bearer string
}

// actor is the audit log's name for the principal.
func (p principal) actor() string { return "token:" + p.name }

// tokenSet holds the tokens in memory; writes go through the store first.
type tokenSet struct {
	db *wal.DB
	// node, when set, takes token writes as configuration changes (on a
	// cluster member they replicate); the set reloads from the store when
	// the node's token generation moved (a change here or on another
	// member).
	node      *actors.Node
	gen       atomic.Uint64
	bootstrap *tokenEntry

	mu   sync.Mutex // serialises writes
	list atomic.Pointer[[]tokenEntry]
}

type tokenEntry struct {
	tok  Token
	hash [sha256.Size]byte
}

func hashToken(t string) [sha256.Size]byte { return sha256.Sum256([]byte(t)) }

// NewTokenString returns a fresh random token.
func NewTokenString() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Rules for --admin-token: a token made by hand is held to what a random
// one easily passes.
const (
	MinBootstrapTokenLen      = 32
	MinBootstrapTokenDistinct = 10
)

// CheckBootstrapToken refuses a weak --admin-token: fewer than
// MinBootstrapTokenLen characters, fewer than MinBootstrapTokenDistinct
// distinct characters, or whitespace or control characters.
func CheckBootstrapToken(t string) error {
	if n := utf8.RuneCountInString(t); n < MinBootstrapTokenLen {
		return fmt.Errorf("--admin-token is too weak: %d characters, at least %d are required (make one with `openssl rand -base64 32`)", n, MinBootstrapTokenLen)
	}
	seen := map[rune]bool{}
	for _, c := range t {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return errors.New("--admin-token must not contain spaces or control characters")
		}
		seen[c] = true
	}
	if len(seen) < MinBootstrapTokenDistinct {
		return fmt.Errorf("--admin-token is too weak: %d distinct characters, at least %d are required (make one with `openssl rand -base64 32`)", len(seen), MinBootstrapTokenDistinct)
	}
	return nil
}

func loadTokens(db *wal.DB, bootstrap string) (*tokenSet, error) {
	ts := &tokenSet{db: db}
	if bootstrap != "" {
		ts.bootstrap = &tokenEntry{
			tok:  Token{Name: BootstrapTokenName, Role: RoleAdmin, Prefix: tokenDisplayPrefix(bootstrap)},
			hash: hashToken(bootstrap),
		}
	}
	if err := ts.reload(); err != nil {
		return nil, err
	}
	return ts, nil
}

// reload reads the stored tokens again.
func (ts *tokenSet) reload() error {
	var gen uint64
	if ts.node != nil {
		gen = ts.node.TokenGeneration()
	}
	stored, err := ListTokens(ts.db)
	if err != nil {
		return err
	}
	var list []tokenEntry
	for _, t := range stored {
		h, err := hex.DecodeString(t.Hash)
		if err != nil || len(h) != sha256.Size {
			return fmt.Errorf("%w: token %q has a bad hash", wal.ErrCorrupt, t.Name)
		}
		e := tokenEntry{tok: t}
		copy(e.hash[:], h)
		list = append(list, e)
	}
	if ts.bootstrap != nil {
		list = append(list, *ts.bootstrap)
	}
	ts.list.Store(&list)
	ts.gen.Store(gen)
	return nil
}

// current is the token list, read again first if the stored tokens
// changed since it was read. A failed read keeps the list there is.
func (ts *tokenSet) current() []tokenEntry {
	if ts.node != nil && ts.node.TokenGeneration() != ts.gen.Load() {
		ts.reload()
	}
	return *ts.list.Load()
}

func tokenDisplayPrefix(t string) string {
	if len(t) > len(TokenPrefix)+4 && strings.HasPrefix(t, TokenPrefix) {
		return t[:len(TokenPrefix)+4]
	}
	if len(t) > 4 {
		return t[:4]
	}
	return ""
}

// check finds the token's principal. Every stored hash is compared, in
// constant time, whatever matches, so timing tells nothing about which
// tokens exist. It reads one snapshot of the list: create and revoke swap
// in a new slice, so a check that loaded the list again mid-loop could
// index a shorter one (a panic) or another token (a wrong principal).
func (ts *tokenSet) check(presented string) (principal, bool) {
	h := hashToken(presented)
	list := ts.current()
	found := -1
	for i := range list {
		if subtle.ConstantTimeCompare(h[:], list[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return principal{}, false
	}
	return principal{name: list[found].tok.Name, role: list[found].tok.Role, bearer: presented}, true
}

func (ts *tokenSet) empty() bool { return len(ts.current()) == 0 }

func (ts *tokenSet) all() []api.Token {
	var out []api.Token
	for _, e := range ts.current() {
		out = append(out, e.tok.Wire())
	}
	slices.SortFunc(out, func(a, b api.Token) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// create stores a new token and returns it in clear, the only time it is.
func (ts *tokenSet) create(name, role, by string, now time.Time) (string, Token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := validTokenReq(name, role); err != nil {
		return "", Token{}, err
	}
	for _, e := range ts.current() {
		if e.tok.Name == name {
			return "", Token{}, errConflict("a token named %q already exists", name)
		}
	}
	if ts.node != nil {
		secret, tok, err := newToken(name, role, by, now)
		if err != nil {
			return "", Token{}, err
		}
		raw, err := json.Marshal(tok)
		if err != nil {
			return "", Token{}, err
		}
		err = ts.node.Apply(actors.Change{Tokens: []actors.TokenRecord{{Name: name, Record: raw}}, Actor: by,
			Audit: []wal.AuditEntry{tokenCreated(tok, now)}})
		if err != nil {
			return "", Token{}, err
		}
		tok.Hash = ""
		return secret, tok, ts.reload()
	}
	secret, tok, err := CreateToken(ts.db, name, role, by, now)
	if err != nil {
		return "", Token{}, err
	}
	list := slices.Clone(*ts.list.Load())
	list = append(list, tokenEntry{tok: tok, hash: hashToken(secret)})
	ts.list.Store(&list)
	tok.Hash = ""
	return secret, tok, nil
}

func (ts *tokenSet) revoke(name, by string, now time.Time) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if name == BootstrapTokenName {
		if slices.ContainsFunc(*ts.list.Load(), func(e tokenEntry) bool { return e.tok.Name == name && e.tok.Hash == "" }) {
			return errConflict("the bootstrap token comes from --admin-token; remove the flag and restart to revoke it")
		}
	}
	if ts.node != nil {
		err := ts.node.Apply(actors.Change{DeleteTokens: []string{name}, Actor: by,
			Audit: []wal.AuditEntry{tokenRevoked(name, by, now)}})
		if err != nil {
			return err
		}
		return ts.reload()
	}
	if err := RevokeToken(ts.db, name, by, now); err != nil {
		return err
	}
	list := slices.DeleteFunc(slices.Clone(*ts.list.Load()), func(e tokenEntry) bool { return e.tok.Name == name && e.tok.Hash != "" })
	ts.list.Store(&list)
	return nil
}

func validTokenReq(name, role string) error {
	if !model.ValidSlug(name) {
		return errBadRequest("validation_failed", "name", "%q is not a valid token name (a-z, 0-9, '-', '_', at most 63)", name)
	}
	if name == BootstrapTokenName {
		return errBadRequest("validation_failed", "name", "%q is reserved for --admin-token", name)
	}
	if role != RoleAdmin && role != RoleRead {
		return errBadRequest("validation_failed", "role", "must be %q or %q, got %q", RoleAdmin, RoleRead, role)
	}
	return nil
}

// ListTokens reads the stored tokens (hashes included). It works on an
// open store, so `webhookops token list --data-dir` can use it while the
// server is stopped.
func ListTokens(db *wal.DB) ([]Token, error) {
	var out []Token
	err := db.LoadConfig(wal.KindToken, func(slug string, raw []byte) error {
		var t Token
		if err := json.Unmarshal(raw, &t); err != nil {
			return fmt.Errorf("%w: token %q", wal.ErrCorrupt, slug)
		}
		out = append(out, t)
		return nil
	})
	return out, err
}

// CreateToken stores a new token's hash, audited, and returns the token in
// clear. It does not check for an existing name; callers do.
func CreateToken(db *wal.DB, name, role, by string, now time.Time) (string, Token, error) {
	secret, tok, err := newToken(name, role, by, now)
	if err != nil {
		return "", Token{}, err
	}
	b := db.NewBatch()
	if err := b.PutConfig(wal.KindToken, name, tok); err != nil {
		b.Discard()
		return "", Token{}, err
	}
	b.Audit(tokenCreated(tok, now))
	if err := db.CommitWait(b); err != nil {
		return "", Token{}, err
	}
	return secret, tok, nil
}

// newToken makes a token: the secret, in clear, and its record.
func newToken(name, role, by string, now time.Time) (string, Token, error) {
	if err := validTokenReq(name, role); err != nil {
		return "", Token{}, err
	}
	secret, err := NewTokenString()
	if err != nil {
		return "", Token{}, err
	}
	h := hashToken(secret)
	return secret, Token{Name: name, Role: role, Hash: hex.EncodeToString(h[:]), Prefix: tokenDisplayPrefix(secret), CreatedAt: now.UTC(), CreatedBy: by}, nil
}

func tokenCreated(tok Token, now time.Time) wal.AuditEntry {
	return wal.AuditEntry{At: now.UTC(), Action: "token.created", ObjectType: "token", ObjectID: tok.Name, Actor: tok.CreatedBy,
		Detail: map[string]string{"role": tok.Role, "prefix": tok.Prefix}}
}

func tokenRevoked(name, by string, now time.Time) wal.AuditEntry {
	return wal.AuditEntry{At: now.UTC(), Action: "token.revoked", ObjectType: "token", ObjectID: name, Actor: by}
}

// RevokeToken deletes a stored token, audited.
func RevokeToken(db *wal.DB, name, by string, now time.Time) error {
	if _, err := db.GetConfig(wal.KindToken, name); err != nil {
		if errors.Is(err, wal.ErrNotFound) {
			return errNotFound("no token named %q", name)
		}
		return err
	}
	b := db.NewBatch()
	b.DeleteConfig(wal.KindToken, name)
	b.Audit(tokenRevoked(name, by, now))
	return db.CommitWait(b)
}

// bearer extracts the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

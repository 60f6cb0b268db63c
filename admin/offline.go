package admin

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/webhookops/webhookops/admin/api"
	"github.com/webhookops/webhookops/wal"
)

// OfflineTokens manages the tokens of a data dir while its server is
// stopped: `webhookops token ... --data-dir` (the CLI's cli.Offline). The
// store's lock refuses while a server has the dir open, which is what
// keeps the two from writing at once.
type OfflineTokens struct{}

// ListTokens lists the dir's tokens, without their hashes.
func (OfflineTokens) ListTokens(dir string) ([]api.Token, error) {
	var out []api.Token
	err := offline(dir, func(db *wal.DB) error {
		toks, err := ListTokens(db)
		for _, t := range toks {
			out = append(out, t.Wire())
		}
		return err
	})
	return out, err
}

// CreateToken makes a token in the dir and returns it in clear, once; a
// token of that name already there is a conflict.
func (OfflineTokens) CreateToken(dir, name, role, by string) (api.CreatedToken, error) {
	var out api.CreatedToken
	err := offline(dir, func(db *wal.DB) error {
		if err := notMember(db, dir); err != nil {
			return err
		}
		toks, err := ListTokens(db)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(toks, func(t Token) bool { return t.Name == name }) {
			return errConflict("a token named %q already exists", name)
		}
		secret, tok, err := CreateToken(db, name, role, by, time.Now())
		if err != nil {
			return err
		}
		out = api.CreatedToken{Token: tok.Wire(), Secret: secret}
		return nil
	})
	return out, err
}

// RevokeToken deletes a token of the dir, audited.
func (OfflineTokens) RevokeToken(dir, name, by string) error {
	return offline(dir, func(db *wal.DB) error {
		if err := notMember(db, dir); err != nil {
			return err
		}
		return RevokeToken(db, name, by, time.Now())
	})
}

// notMember refuses a cluster member's data dir: its tokens are the
// cluster's, written through the metadata shard; a write here would stay
// in this one store (and go at the member's next snapshot).
func notMember(db *wal.DB, dir string) error {
	id, err := db.ClusterMember()
	if err != nil {
		return err
	}
	if id != 0 {
		return fmt.Errorf("%s belongs to cluster member %d: its tokens are the cluster's; create or revoke them through any member's admin API (drop --data-dir)", dir, id)
	}
	return nil
}

// offline opens the data dir for fn.
func offline(dir string, fn func(*wal.DB) error) error {
	db, err := wal.Open(dir, wal.Config{CacheSize: 8 << 20})
	if err != nil {
		if strings.Contains(err.Error(), "lock") || errors.Is(err, syscall.EAGAIN) {
			return fmt.Errorf("%s is in use (is `webhookops serve` running? then use the API: drop --data-dir): %w", dir, err)
		}
		return err
	}
	defer db.Close()
	return fn(db)
}

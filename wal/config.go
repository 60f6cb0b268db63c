package wal

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/webhookops/webhookops/wal/model"
)

type storedAgent struct {
	model.Agent
	SealedSecret string `json:"sealed_secret,omitempty"`
}

// storedDestination is a destination at rest: signing secrets and secret
// header values sealed in place, the URL's query (where tokens travel)
// sealed apart, the URL kept without it.
type storedDestination struct {
	model.Destination
	SealedQuery string `json:"sealed_query,omitempty"`
}

// Associated data of every sealed field: a sealed value opens only in the
// record and field it was sealed for.
func sourceAD(slug string) []byte           { return ad("source", slug, "secret") }
func agentAD(id string) []byte              { return ad("agent", id, "secret") }
func destAD(slug, field string) []byte      { return ad("destination", slug, field) }
func destHeaderAD(slug, name string) []byte { return destAD(slug, "header:"+strings.ToLower(name)) }

// PutSource stores a source with its secrets sealed.
func (b *Batch) PutSource(s model.Source) error {
	sealed := make([]string, len(s.Secrets))
	for i, sec := range s.Secrets {
		sealed[i] = b.db.sealer.seal(sec, sourceAD(s.Slug))
	}
	s.Secrets = sealed
	return b.PutConfig(KindSource, s.Slug, s)
}

// PutDestination stores a destination with its signing secrets, secret
// header values (model.Destination.IsSecretHeader) and URL query sealed.
func (b *Batch) PutDestination(d model.Destination) error {
	sl := b.db.sealer
	d.SigningSecret = sl.seal(d.SigningSecret, destAD(d.Slug, "signing_secret"))
	d.PreviousSigningSecret = sl.seal(d.PreviousSigningSecret, destAD(d.Slug, "previous_signing_secret"))
	if len(d.Headers) > 0 {
		h := make(map[string]string, len(d.Headers))
		for k, v := range d.Headers {
			if d.IsSecretHeader(k) {
				v = sl.seal(v, destHeaderAD(d.Slug, k))
			}
			h[k] = v
		}
		d.Headers = h
	}
	st := storedDestination{Destination: d}
	if base, query, frag := model.SplitQuery(d.URL); query != "" {
		st.SealedQuery = sl.seal(query, destAD(d.Slug, "url_query"))
		st.URL = base + frag
	}
	return b.PutConfig(KindDestination, d.Slug, st)
}

// PutAgent stores an agent with its secret sealed.
func (b *Batch) PutAgent(a model.Agent) error {
	return b.PutConfig(KindAgent, a.ID, storedAgent{Agent: a, SealedSecret: b.db.sealer.seal(a.Secret, agentAD(a.ID))})
}

// PutForward stores a forward under its listen address.
func (b *Batch) PutForward(f model.Forward) error { return b.PutConfig(KindForward, f.Listen, f) }

// LoadConfig calls fn with the raw JSON of every object of a kind.
func (db *DB) LoadConfig(kind byte, fn func(slug string, raw []byte) error) error {
	lo := []byte{prefixConfig, kind}
	return db.scan(lo, prefixEnd(lo), func(k, v []byte) error {
		return fn(string(k[2:]), v)
	})
}

// GetConfig reads one config object's raw JSON.
func (db *DB) GetConfig(kind byte, slug string) ([]byte, error) {
	return db.get(configKey(kind, slug))
}

// Sources reads every stored source, secrets opened.
func (db *DB) Sources() ([]model.Source, error) {
	var out []model.Source
	err := db.LoadConfig(KindSource, func(slug string, raw []byte) error {
		var s model.Source
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("%w: source %q", ErrCorrupt, slug)
		}
		for i, sec := range s.Secrets {
			plain, err := db.sealer.open(sec, sourceAD(slug))
			if err != nil {
				return fmt.Errorf("source %q: %w", slug, err)
			}
			s.Secrets[i] = plain
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// Destinations reads every stored destination, its secrets opened.
func (db *DB) Destinations() ([]model.Destination, error) {
	var out []model.Destination
	err := db.LoadConfig(KindDestination, func(slug string, raw []byte) error {
		d, err := db.openDestination(slug, raw)
		if err != nil {
			return fmt.Errorf("destination %q: %w", slug, err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

func (db *DB) openDestination(slug string, raw []byte) (model.Destination, error) {
	var st storedDestination
	if err := json.Unmarshal(raw, &st); err != nil {
		return model.Destination{}, ErrCorrupt
	}
	d, sl := st.Destination, db.sealer
	var err error
	if d.SigningSecret, err = sl.open(d.SigningSecret, destAD(slug, "signing_secret")); err != nil {
		return d, err
	}
	if d.PreviousSigningSecret, err = sl.open(d.PreviousSigningSecret, destAD(slug, "previous_signing_secret")); err != nil {
		return d, err
	}
	for k, v := range d.Headers {
		// Values stored before headers were sealed are in clear; the next
		// write (or Open's migration) seals them.
		if isSealed(v) {
			if d.Headers[k], err = sl.open(v, destHeaderAD(slug, k)); err != nil {
				return d, err
			}
		}
	}
	if st.SealedQuery != "" {
		q, err := sl.open(st.SealedQuery, destAD(slug, "url_query"))
		if err != nil {
			return d, err
		}
		base, _, frag := model.SplitQuery(d.URL)
		d.URL = base + "?" + q + frag
	}
	return d, nil
}

// Agents reads every stored agent, secrets opened.
func (db *DB) Agents() ([]model.Agent, error) {
	var out []model.Agent
	err := db.LoadConfig(KindAgent, func(slug string, raw []byte) error {
		var a storedAgent
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("%w: agent %q", ErrCorrupt, slug)
		}
		plain, err := db.sealer.open(a.SealedSecret, agentAD(slug))
		if err != nil {
			return fmt.Errorf("agent %q: %w", slug, err)
		}
		a.Agent.Secret = plain
		out = append(out, a.Agent)
		return nil
	})
	return out, err
}

// Forwards reads every stored forward.
func (db *DB) Forwards() ([]model.Forward, error) {
	var out []model.Forward
	err := db.LoadConfig(KindForward, func(slug string, raw []byte) error {
		var f model.Forward
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("%w: forward %q", ErrCorrupt, slug)
		}
		out = append(out, f)
		return nil
	})
	return out, err
}

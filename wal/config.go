package wal

import (
	"encoding/json"
	"fmt"

	"github.com/webhookops/webhookops/wal/model"
)

type storedAgent struct {
	model.Agent
	SealedSecret string `json:"sealed_secret,omitempty"`
}

// PutSource stores a source with its secrets sealed.
func (b *Batch) PutSource(s model.Source) error {
	sealed := make([]string, len(s.Secrets))
	for i, sec := range s.Secrets {
		sealed[i] = b.db.sealer.seal(sec)
	}
	s.Secrets = sealed
	return b.PutConfig(KindSource, s.Slug, s)
}

// PutDestination stores a destination with its signing secret sealed.
func (b *Batch) PutDestination(d model.Destination) error {
	d.SigningSecret = b.db.sealer.seal(d.SigningSecret)
	d.PreviousSigningSecret = b.db.sealer.seal(d.PreviousSigningSecret)
	return b.PutConfig(KindDestination, d.Slug, d)
}

// PutAgent stores an agent with its secret sealed.
func (b *Batch) PutAgent(a model.Agent) error {
	return b.PutConfig(KindAgent, a.ID, storedAgent{Agent: a, SealedSecret: b.db.sealer.seal(a.Secret)})
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
			plain, err := db.sealer.open(sec)
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

// Destinations reads every stored destination, signing secrets opened.
func (db *DB) Destinations() ([]model.Destination, error) {
	var out []model.Destination
	err := db.LoadConfig(KindDestination, func(slug string, raw []byte) error {
		var d model.Destination
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("%w: destination %q", ErrCorrupt, slug)
		}
		plain, err := db.sealer.open(d.SigningSecret)
		if err != nil {
			return fmt.Errorf("destination %q: %w", slug, err)
		}
		d.SigningSecret = plain
		if d.PreviousSigningSecret, err = db.sealer.open(d.PreviousSigningSecret); err != nil {
			return fmt.Errorf("destination %q: %w", slug, err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// Agents reads every stored agent, secrets opened.
func (db *DB) Agents() ([]model.Agent, error) {
	var out []model.Agent
	err := db.LoadConfig(KindAgent, func(slug string, raw []byte) error {
		var a storedAgent
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("%w: agent %q", ErrCorrupt, slug)
		}
		plain, err := db.sealer.open(a.SealedSecret)
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

package actors

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/webhookops/webhookops/wal/model"
)

// Snapshot is an immutable view of the configuration. Readers load it
// through an atomic pointer and never lock; writers build a new one.
type Snapshot struct {
	Sources      map[string]*SourceView
	Destinations map[string]model.Destination // as stored (no defaults applied)
	Agents       map[string]model.Agent
	Forwards     map[string]model.Forward
}

// SourceView is a source ready for the ingest hot path: secrets already bytes.
type SourceView struct {
	model.Source
	SecretBytes [][]byte
}

func newSnapshot() *Snapshot {
	return &Snapshot{
		Sources:      map[string]*SourceView{},
		Destinations: map[string]model.Destination{},
		Agents:       map[string]model.Agent{},
		Forwards:     map[string]model.Forward{},
	}
}

func (s *Snapshot) clone() *Snapshot {
	return &Snapshot{
		Sources:      maps.Clone(s.Sources),
		Destinations: maps.Clone(s.Destinations),
		Agents:       maps.Clone(s.Agents),
		Forwards:     maps.Clone(s.Forwards),
	}
}

func viewOf(src model.Source) *SourceView {
	v := &SourceView{Source: src}
	for _, s := range src.Secrets {
		v.SecretBytes = append(v.SecretBytes, []byte(s))
	}
	return v
}

// check verifies cross references: every route names a destination, every
// agent destination and forward names an agent.
func (s *Snapshot) check() error {
	for _, slug := range slices.Sorted(maps.Keys(s.Sources)) {
		for i, r := range s.Sources[slug].Source.Routes {
			if _, ok := s.Destinations[r.Destination]; !ok {
				return &model.FieldError{Field: fmt.Sprintf("sources[%s].routes[%d].destination", slug, i), Message: fmt.Sprintf("unknown destination %q", r.Destination)}
			}
		}
	}
	for _, slug := range slices.Sorted(maps.Keys(s.Destinations)) {
		d := s.Destinations[slug]
		if d.Mode == model.ModeAgent {
			if _, ok := s.Agents[d.Agent]; !ok {
				return &model.FieldError{Field: fmt.Sprintf("destinations[%s].agent", slug), Message: fmt.Sprintf("unknown agent %q", d.Agent)}
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Forwards)) {
		if _, ok := s.Agents[s.Forwards[k].Agent]; !ok {
			return &model.FieldError{Field: fmt.Sprintf("forwards[%s].agent", k), Message: fmt.Sprintf("unknown agent %q", s.Forwards[k].Agent)}
		}
	}
	return nil
}

// mask hides a secret for logs, audit entries and API reads.
func mask(s string) string {
	if s == "" {
		return ""
	}
	if len(s) <= 8 {
		return "****"
	}
	return s[:4] + strings.Repeat("*", 4)
}

// Mask hides a secret for display: its first four characters and stars.
func Mask(s string) string { return mask(s) }

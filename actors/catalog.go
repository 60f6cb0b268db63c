package actors

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/webhookops/webhookops/tunnelproto"
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

// checkTargets refuses agent-mode destinations and forwards whose target
// their agent does not allow: the tunnel (and agentd) would refuse every
// delivery or connection, so the mistake is reported when it is made,
// wherever the change comes from (the API, or a config file applied at
// start). It looks at the objects c names and at those that go through an
// agent c names, nothing else: an object stored before this rule must not
// block unrelated changes. Call it after check, on the next snapshot.
func (s *Snapshot) checkTargets(c Change) error {
	named := map[string]bool{} // "destination billing", "forward 127.0.0.1:7000"
	for _, d := range c.Destinations {
		named["destination "+d.Slug] = true
	}
	for _, f := range c.Forwards {
		named["forward "+f.Listen] = true
	}
	agents := map[string]bool{}
	for _, a := range c.Agents {
		agents[a.ID] = true
	}
	if len(named) == 0 && len(agents) == 0 {
		return nil
	}
	// refuse says what is wrong on the side the change touched: the
	// destination or forward it writes, or else the agent it narrows.
	refuse := func(kind, key, field, agent, target string) error {
		if named[kind+" "+key] {
			return &model.FieldError{Field: fmt.Sprintf("%ss[%s].%s", kind, key, field),
				Message: fmt.Sprintf("agent %q does not allow %s; add it to the agent's allowed_targets (and agentd's --allow) first", agent, target)}
		}
		return &model.FieldError{Field: fmt.Sprintf("agents[%s].allowed_targets", agent),
			Message: fmt.Sprintf("%s %q reaches %s through this agent; keep it in allowed_targets, or change or delete the %s first", kind, key, target, kind)}
	}
	for _, slug := range slices.Sorted(maps.Keys(s.Destinations)) {
		d := s.Destinations[slug]
		if d.Mode != model.ModeAgent || !named["destination "+slug] && !agents[d.Agent] {
			continue
		}
		target, err := d.AgentTarget()
		if err != nil {
			return &model.FieldError{Field: fmt.Sprintf("destinations[%s].url", slug), Message: err.Error()}
		}
		if !tunnelproto.TargetAllowed(s.Agents[d.Agent].AllowedTargets, target) {
			return refuse("destination", slug, "url", d.Agent, target)
		}
	}
	for _, listen := range slices.Sorted(maps.Keys(s.Forwards)) {
		f := s.Forwards[listen]
		if (named["forward "+listen] || agents[f.Agent]) && !tunnelproto.TargetAllowed(s.Agents[f.Agent].AllowedTargets, f.Target) {
			return refuse("forward", listen, "target", f.Agent, f.Target)
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

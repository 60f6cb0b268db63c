package actors

import (
	"errors"
	"strings"
	"testing"

	"github.com/webhookops/webhookops/wal/model"
)

// TestApplyChecksAgentTargets: an agent-mode destination or a forward
// whose target its agent does not allow is refused by Apply itself, so a
// config file (applied at start, not through the API's handlers) is
// checked too, and so is an agent change that stops allowing what a
// destination uses. A refused change writes nothing.
func TestApplyChecksAgentTargets(t *testing.T) {
	dev := model.Agent{ID: "dev", AllowedTargets: []string{"billing.internal:443", "db.internal:5432"}}
	viaDev := func(url string) model.Destination {
		return model.Destination{Slug: "billing", URL: url, Mode: model.ModeAgent, Agent: "dev"}
	}
	fwd := func(target string) model.Forward {
		return model.Forward{Listen: "127.0.0.1:7000", Agent: "dev", Target: target}
	}
	cases := []struct {
		name      string
		change    Change
		wantField string // "" for accepted
	}{
		{"file: destination not allowed", Change{Agents: []model.Agent{dev}, Destinations: []model.Destination{viaDev("https://evil.internal/in")}},
			"destinations[billing].url"},
		{"file: wrong port", Change{Agents: []model.Agent{dev}, Destinations: []model.Destination{viaDev("http://billing.internal/in")}},
			"destinations[billing].url"},
		{"file: forward not allowed", Change{Agents: []model.Agent{dev}, Forwards: []model.Forward{fwd("db.internal:22")}},
			"forwards[127.0.0.1:7000].target"},
		{"file: allowed", Change{Agents: []model.Agent{dev}, Destinations: []model.Destination{viaDev("https://BILLING.internal/in")},
			Forwards: []model.Forward{fwd("db.internal:5432")}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tn := startNode(t, t.TempDir(), nil, Change{})
			err := tn.Apply(tc.change)
			if tc.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *model.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField || !strings.Contains(fe.Message, "allowed_targets") {
				t.Fatalf("Apply: %v, want a field error on %s naming allowed_targets", err, tc.wantField)
			}
			snap := tn.Snapshot()
			if len(snap.Agents)+len(snap.Destinations)+len(snap.Forwards) != 0 {
				t.Fatalf("a refused change left %d agents, %d destinations, %d forwards", len(snap.Agents), len(snap.Destinations), len(snap.Forwards))
			}
			stored, err := tn.db.Agents()
			if err != nil || len(stored) != 0 {
				t.Fatalf("a refused change stored agents %v (%v)", stored, err)
			}
		})
	}

	t.Run("agent change that strands a destination", func(t *testing.T) {
		tn := startNode(t, t.TempDir(), nil, Change{Agents: []model.Agent{dev},
			Destinations: []model.Destination{viaDev("https://billing.internal/in")}, Forwards: []model.Forward{fwd("db.internal:5432")}})
		narrowed := dev
		narrowed.AllowedTargets = []string{"db.internal:5432"}
		err := tn.Apply(Change{Agents: []model.Agent{narrowed}})
		var fe *model.FieldError
		if !errors.As(err, &fe) || fe.Field != "agents[dev].allowed_targets" || !strings.Contains(fe.Message, `destination "billing"`) {
			t.Fatalf("Apply: %v, want a field error on agents[dev].allowed_targets naming the destination", err)
		}
		if got := tn.Snapshot().Agents["dev"].AllowedTargets; len(got) != 2 {
			t.Fatalf("the refused change narrowed the agent to %v", got)
		}
		narrowed.AllowedTargets = []string{"billing.internal:443"}
		err = tn.Apply(Change{Agents: []model.Agent{narrowed}})
		if !errors.As(err, &fe) || fe.Field != "agents[dev].allowed_targets" || !strings.Contains(fe.Message, `forward "127.0.0.1:7000"`) {
			t.Fatalf("Apply: %v, want a field error on agents[dev].allowed_targets naming the forward", err)
		}
	})

	t.Run("a stored mismatch does not block other changes", func(t *testing.T) {
		// Stored before the rule: written to the store directly.
		dir := t.TempDir()
		tn := startNode(t, dir, nil, Change{Agents: []model.Agent{dev}})
		b := tn.db.NewBatch()
		if err := b.PutDestination(viaDev("https://old.internal/in").WithDefaults()); err != nil {
			t.Fatal(err)
		}
		if err := tn.db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
		tn.stop()
		tn = startNode(t, dir, nil, Change{})
		if err := tn.Apply(Change{Sources: []model.Source{{Slug: "other", Provider: "generic", Verify: "none"}}}); err != nil {
			t.Fatalf("an unrelated change: %v", err)
		}
		err := tn.Apply(Change{Destinations: []model.Destination{viaDev("https://old.internal/v2")}})
		var fe *model.FieldError
		if !errors.As(err, &fe) || fe.Field != "destinations[billing].url" {
			t.Fatalf("updating the stored destination: %v, want a field error on its url", err)
		}
	})
}

// TestApplyCreateOnlyUpdateOnly: a change that must create refuses an
// object that exists, one that must update refuses one that does not, and
// neither writes anything then.
func TestApplyCreateOnlyUpdateOnly(t *testing.T) {
	d := model.Destination{Slug: "d", URL: "https://example.com/h"}
	tn := startNode(t, t.TempDir(), nil, Change{Destinations: []model.Destination{d}})
	changed := d
	changed.URL = "https://example.com/changed"
	fresh := model.Destination{Slug: "fresh", URL: "https://example.com/f"}
	for _, tc := range []struct {
		name   string
		change Change
		want   error
	}{
		{"create an existing one", Change{Destinations: []model.Destination{changed}, CreateOnly: true}, ErrConflict},
		{"create it with a new one", Change{Destinations: []model.Destination{fresh, changed}, CreateOnly: true}, ErrConflict},
		{"update a missing one", Change{Sources: []model.Source{{Slug: "nope", Provider: "generic", Verify: "none"}}, UpdateOnly: true}, ErrNotFound},
		{"update a missing agent", Change{Agents: []model.Agent{{ID: "a"}}, UpdateOnly: true}, ErrNotFound},
	} {
		if err := tn.Apply(tc.change); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	snap := tn.Snapshot()
	if _, ok := snap.Destinations["fresh"]; ok || snap.Destinations["d"].URL != d.URL || len(snap.Sources) != 0 || len(snap.Agents) != 0 {
		t.Fatalf("a refused change wrote: %+v", snap)
	}
	if err := tn.Apply(Change{Destinations: []model.Destination{changed}, UpdateOnly: true}); err != nil {
		t.Fatal(err)
	}
	if err := tn.Apply(Change{Destinations: []model.Destination{fresh}, CreateOnly: true}); err != nil {
		t.Fatal(err)
	}
}

package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/webhookops/webhookops/actors"
	"github.com/webhookops/webhookops/actors/delivery"
	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

func testKey(t testing.TB, b byte) *SealKey {
	t.Helper()
	k, err := NewSealKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type noDelivery struct{}

func (noDelivery) Deliver(context.Context, model.Destination, delivery.Request) delivery.Result {
	return delivery.Result{}
}

// memberNode is a member's node over a fresh store in dir.
func memberNode(t *testing.T, dir string) (*actors.Node, *wal.DB) {
	t.Helper()
	db := openDB(t, dir)
	n, err := actors.Start(actors.Config{DB: db, Deliverer: noDelivery{}, Member: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); db.Close() })
	return n, db
}

func changeCmd(t testing.TB, key *SealKey, c actors.Change) []byte {
	t.Helper()
	plain, err := encodeChange(c)
	if err != nil {
		t.Fatal(err)
	}
	return encodeMetaChange(key, plain)
}

func TestDecideMeta(t *testing.T) {
	mine, other := testKey(t, 1), testKey(t, 2)
	good, _ := decodeMetaEntry(encodeMetaChange(mine, []byte("{}")))
	foreign, _ := decodeMetaEntry(encodeMetaChange(other, []byte("{}")))
	for _, tc := range []struct {
		name      string
		e         metaEntry
		decodeErr error
		recorded  []byte
		want      metaDecision
	}{
		{"first entry, my key", good, nil, nil, metaApply},
		{"my key, recorded", good, nil, mine.id, metaApply},
		{"does not decode", metaEntry{}, errBadEntry, nil, metaBad},
		{"does not decode, recorded", metaEntry{}, errBadEntry, mine.id, metaBad},
		{"another key, none recorded", foreign, nil, nil, metaForeignKey},
		{"another key, mine recorded", foreign, nil, mine.id, metaForeignKey},
		{"my key, the store recorded another", good, nil, other.id, metaForeignKey},
	} {
		if got := decideMeta(tc.e, tc.decodeErr, mine, tc.recorded); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMetaEntryKeepsSecretsSealed(t *testing.T) {
	key := testKey(t, 1)
	c := actors.Change{
		Sources:           []model.Source{{Slug: "s", Provider: "generic", Secrets: []string{"source-secret-in-clear"}}},
		Destinations:      []model.Destination{{Slug: "d", URL: "https://example.com/h?token=query-secret", Headers: map[string]string{"Authorization": "header-secret"}}},
		Agents:            []model.Agent{{ID: "a", Secret: "agent-secret-in-clear"}},
		NewSigningSecrets: map[string]string{"d": "signing-secret-in-clear"},
	}
	cmd := changeCmd(t, key, c)
	for _, s := range []string{"source-secret", "query-secret", "header-secret", "agent-secret", "signing-secret"} {
		if bytes.Contains(cmd, []byte(s)) {
			t.Errorf("the entry holds %q in clear", s)
		}
	}
	e, err := decodeMetaEntry(cmd)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := key.open(e.header, e.sealed)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeChange(plain)
	if err != nil {
		t.Fatal(err)
	}
	if back.Agents[0].Secret != "agent-secret-in-clear" || back.Sources[0].Secrets[0] != "source-secret-in-clear" || back.NewSigningSecrets["d"] != "signing-secret-in-clear" {
		t.Fatalf("round trip lost secrets: %+v", back)
	}
	if _, err := testKey(t, 2).open(e.header, e.sealed); err == nil {
		t.Fatal("another key opened the entry")
	}
	// The header is bound to the sealed part: a changed version byte does
	// not open.
	tampered := bytes.Clone(cmd)
	tampered[1] ^= 0x80
	if e, err := decodeMetaEntry(tampered); err == nil {
		if _, err := key.open(e.header, e.sealed); err == nil {
			t.Fatal("a tampered header opened")
		}
	}
}

// TestMetaUpdate applies changes through a real node: accepted, refused
// (as the usual error kinds), bad bytes, and an entry sealed with another
// key, which stops the replica without recording anything.
func TestMetaUpdate(t *testing.T) {
	key := testKey(t, 1)
	node, db := memberNode(t, t.TempDir())
	var failed []error
	m := &metaSM{db: db, key: key, apply: node, fail: func(err error) { failed = append(failed, err) }}
	if applied, err := m.Open(nil); err != nil || applied != 0 {
		t.Fatalf("Open: %d %v", applied, err)
	}
	dest := model.Destination{Slug: "d", URL: "https://example.com/h", Ordering: model.OrderingParallel}
	tok := actors.TokenRecord{Name: "ops", Record: []byte(`{"name":"ops","role":"admin","hash":"00"}`)}
	ents := []sm.Entry{
		{Index: 1, Cmd: changeCmd(t, key, actors.Change{Destinations: []model.Destination{dest}, NewSigningSecrets: map[string]string{"d": "whsec_first"}})},
		{Index: 2, Cmd: changeCmd(t, key, actors.Change{Destinations: []model.Destination{dest}, NewSigningSecrets: map[string]string{"d": "whsec_second"}})},
		{Index: 3, Cmd: changeCmd(t, key, actors.Change{DeleteSources: []string{"nope"}})},
		{Index: 4, Cmd: []byte("not an entry")},
		{Index: 5, Cmd: changeCmd(t, key, actors.Change{Tokens: []actors.TokenRecord{tok}})},
		{Index: 6, Cmd: changeCmd(t, key, actors.Change{Tokens: []actors.TokenRecord{tok}})},
		{Index: 7, Cmd: changeCmd(t, key, actors.Change{Destinations: []model.Destination{{Slug: "new", URL: "https://example.com/n"}}})},
		{Index: 8, Cmd: changeCmd(t, key, actors.Change{Sources: []model.Source{{Slug: "Bad Slug"}}})},
	}
	gen := node.TokenGeneration()
	out, err := m.Update(ents)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{ResultAccepted, ResultAccepted, ResultRefused, ResultBad, ResultAccepted, ResultRefused, ResultRefused, ResultRefused}
	for i, e := range out {
		if e.Result.Value != want[i] {
			t.Errorf("entry %d: result %d, want %d", e.Index, e.Result.Value, want[i])
		}
	}
	if err := decodeRefusal(out[2].Result.Data); !errors.Is(err, actors.ErrNotFound) {
		t.Errorf("deleting a missing source: %v, want not found", err)
	}
	if err := decodeRefusal(out[5].Result.Data); !errors.Is(err, actors.ErrConflict) {
		t.Errorf("a token again: %v, want conflict", err)
	}
	var fe *model.FieldError
	if err := decodeRefusal(out[6].Result.Data); !errors.As(err, &fe) || !strings.Contains(fe.Field, "signing_secret") {
		t.Errorf("a new destination without its secret: %v, want a field error", err)
	}
	if err := decodeRefusal(out[7].Result.Data); !errors.As(err, &fe) {
		t.Errorf("a bad slug: %v, want a field error", err)
	}
	// The first proposal's secret; the second kept it (the destination
	// existed).
	if d := node.Snapshot().Destinations["d"]; d.SigningSecret != "whsec_first" {
		t.Errorf("signing secret %q, want the first proposal's", d.SigningSecret)
	}
	if node.TokenGeneration() == gen {
		t.Error("a token change did not move the token generation")
	}
	if raw, err := db.GetConfig(wal.KindToken, "ops"); err != nil || !bytes.Contains(raw, []byte(`"ops"`)) {
		t.Errorf("token record: %s %v", raw, err)
	}
	st, err := db.ReadMetaState()
	if err != nil || st.Applied != 8 || !key.is(st.KeyID) {
		t.Fatalf("meta state %+v %v, want applied 8 and the key's id", st, err)
	}

	// Another key: not applied, nothing recorded, the member is told, and
	// nothing after it is applied either.
	other := testKey(t, 2)
	out, err = m.Update([]sm.Entry{
		{Index: 9, Cmd: changeCmd(t, other, actors.Change{DeleteDestinations: []string{"d"}})},
		{Index: 10, Cmd: changeCmd(t, key, actors.Change{DeleteDestinations: []string{"d"}})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Result.Value != ResultSealKey || out[1].Result.Value != ResultSealKey {
		t.Errorf("results %d %d, want %d twice", out[0].Result.Value, out[1].Result.Value, ResultSealKey)
	}
	if len(failed) != 1 || !strings.Contains(failed[0].Error(), other.ID()) {
		t.Errorf("failures: %v", failed)
	}
	if _, ok := node.Snapshot().Destinations["d"]; !ok {
		t.Error("a change after the foreign entry was applied")
	}
	if st, _ := db.ReadMetaState(); st.Applied != 8 {
		t.Errorf("applied %d after a foreign entry, want 8", st.Applied)
	}
}

// TestMetaSnapshot: a snapshot restores on a member whose store has its
// own sealing key, replacing what it had; one sealed with another
// cluster key is refused.
func TestMetaSnapshot(t *testing.T) {
	key := testKey(t, 1)
	n1, db1 := memberNode(t, t.TempDir())
	m1 := &metaSM{db: db1, key: key, apply: n1, fail: func(error) {}}
	m1.Open(nil)
	src := model.Source{Slug: "s", Provider: "generic", Secrets: []string{"src-secret"}, Routes: []model.Route{{Destination: "d"}}}
	dest := model.Destination{Slug: "d", URL: "https://example.com/h?k=v", Headers: map[string]string{"Authorization": "Bearer x"}}
	agent := model.Agent{ID: "a", Secret: "agent-secret", AllowedTargets: []string{"127.0.0.1:9"}}
	if _, err := m1.Update([]sm.Entry{{Index: 1, Cmd: changeCmd(t, key, actors.Change{
		Sources: []model.Source{src}, Destinations: []model.Destination{dest}, Agents: []model.Agent{agent},
		Forwards:          []model.Forward{{Listen: "127.0.0.1:7000", Agent: "a", Target: "127.0.0.1:9"}},
		Tokens:            []actors.TokenRecord{{Name: "ops", Record: []byte(`{"name":"ops"}`)}},
		NewSigningSecrets: map[string]string{"d": "whsec_snap"},
	})}}); err != nil {
		t.Fatal(err)
	}
	ctx, err := m1.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m1.SaveSnapshot(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"src-secret", "agent-secret", "whsec_snap", "Bearer x"} {
		if bytes.Contains(buf.Bytes(), []byte(s)) {
			t.Errorf("the snapshot holds %q in clear", s)
		}
	}

	n2, db2 := memberNode(t, t.TempDir()) // its own secret.key
	m2 := &metaSM{db: db2, key: key, apply: n2, fail: func(error) {}}
	m2.Open(nil)
	// What it had before is replaced.
	if _, err := m2.Update([]sm.Entry{{Index: 1, Cmd: changeCmd(t, key, actors.Change{
		Destinations: []model.Destination{{Slug: "stale", URL: "https://example.com/s"}}, NewSigningSecrets: map[string]string{"stale": "x"}})}}); err != nil {
		t.Fatal(err)
	}
	if err := m2.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	snap := n2.Snapshot()
	if _, ok := snap.Destinations["stale"]; ok {
		t.Error("the snapshot did not replace the configuration")
	}
	if d := snap.Destinations["d"]; d.SigningSecret != "whsec_snap" || d.URL != dest.URL || d.Headers["Authorization"] != "Bearer x" {
		t.Errorf("destination after restore: %+v", d)
	}
	if s := snap.Sources["s"]; s == nil || s.Secrets[0] != "src-secret" {
		t.Errorf("source after restore: %+v", s)
	}
	if a := snap.Agents["a"]; a.Secret != "agent-secret" || len(snap.Forwards) != 1 {
		t.Errorf("agent %+v, forwards %v", a, snap.Forwards)
	}
	if st, _ := db2.ReadMetaState(); st.Applied != 1 || !key.is(st.KeyID) {
		t.Errorf("meta state after restore: %+v", st)
	}

	var failed error
	m3 := &metaSM{db: db2, key: testKey(t, 3), apply: n2, fail: func(err error) { failed = err }}
	if err := m3.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), nil); err == nil || failed == nil {
		t.Fatalf("a snapshot under another key: %v, failed %v", err, failed)
	}
	if err := m2.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()[:buf.Len()-1]), nil); err == nil {
		t.Fatal("a cut snapshot restored")
	}
}

// FuzzMetaUpdate: whatever the bytes, Update answers a result value per
// entry, never an error, never a panic, and a result other than accepted
// changed nothing.
func FuzzMetaUpdate(f *testing.F) {
	key := testKey(f, 1)
	good := changeCmd(f, key, actors.Change{DeleteSources: []string{"x"}})
	// sealed: cmd is a change's plain encoding, sealed with the key (the
	// fuzzer could never forge the seal itself).
	for _, seed := range []struct {
		cmd    []byte
		sealed bool
	}{
		{good, false},
		{good[:metaHeaderLen], false},
		{nil, false},
		{[]byte{metaKindChange, metaVersion}, false},
		{append([]byte{metaKindChange, 9}, good[2:]...), false},
		{[]byte(`{"sources":[{"slug":"s"}],"unknown":1}`), true},
		{[]byte(`{"sources":[{"slug":"s","provider":"generic","verify":"none","routes":[{"destination":"d"}]}]}`), true},
		{[]byte(`{"destinations":[{"slug":"d","url":"https://e.com"}],"new_signing_secrets":{"d":"x"}}`), true},
		{[]byte(`{"agents":[{"id":"a","secret":"s"}],"forwards":[{"listen":"127.0.0.1:1","agent":"a","target":"127.0.0.1:2"}]}`), true},
		{[]byte(`{"tokens":[{"name":"t","record":{"name":"t"}}],"delete_tokens":["t"]}`), true},
		{[]byte(`nonsense`), true},
		{encodeMeta(metaKindMembers, key, []byte(`{"set":[{"id":1,"address":"h:1"}],"if_none":true}`)), false},
		{encodeMeta(metaKindMembers, key, []byte(`{"remove":[0]}`)), false},
	} {
		f.Add(seed.cmd, seed.sealed)
	}
	db, err := wal.Open(f.TempDir(), wal.Config{Partitions: 4, CacheSize: 4 << 20})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	node, err := actors.Start(actors.Config{DB: db, Deliverer: noDelivery{}, Member: true})
	if err != nil {
		f.Fatal(err)
	}
	defer node.Close()
	m := &metaSM{db: db, key: key, apply: node, fail: func(error) {}}
	var index uint64
	f.Fuzz(func(t *testing.T, cmd []byte, sealed bool) {
		if sealed {
			cmd = encodeMetaChange(key, cmd)
		}
		before := node.Snapshot()
		index++
		out, err := m.Update([]sm.Entry{{Index: index, Cmd: cmd}})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		v := out[0].Result.Value
		if v < ResultAccepted || v > ResultSealKey {
			t.Fatalf("result %d", v)
		}
		if v != ResultAccepted && node.Snapshot() != before {
			t.Fatalf("result %d changed the configuration", v)
		}
		m.stalled = false // a foreign key stops a replica; the fuzzer goes on
	})
}

func TestApplyMembers(t *testing.T) {
	a1, a2 := MemberRecord{ID: 1, Address: "h:1", Initial: true}, MemberRecord{ID: 2, Address: "h:2", Initial: true}
	have := map[uint64]MemberRecord{1: a1, 2: a2}
	for _, tc := range []struct {
		name    string
		have    map[uint64]MemberRecord
		w       membersWire
		put     []MemberRecord
		del     []uint64
		refused bool
	}{
		{name: "initial, none yet", have: nil, w: membersWire{Set: []MemberRecord{a1, a2}, IfNone: true}, put: []MemberRecord{a1, a2}},
		{name: "initial again: the first wins", have: have, w: membersWire{Set: []MemberRecord{{ID: 1, Address: "other:1"}}, IfNone: true}},
		{name: "add", have: have, w: membersWire{Set: []MemberRecord{{ID: 4, Address: "h:4"}}}, put: []MemberRecord{{ID: 4, Address: "h:4"}}},
		{name: "add again, same address", have: have, w: membersWire{Set: []MemberRecord{{ID: 2, Address: "h:2"}}}},
		{name: "remove", have: have, w: membersWire{Remove: []uint64{2}}, del: []uint64{2}},
		{name: "remove one not recorded", have: have, w: membersWire{Remove: []uint64{3}}},
		{name: "id 0", have: have, w: membersWire{Set: []MemberRecord{{ID: 0, Address: "h:0"}}}, refused: true},
		{name: "no address", have: have, w: membersWire{Set: []MemberRecord{{ID: 5}}}, refused: true},
		{name: "set and removed at once", have: have, w: membersWire{Set: []MemberRecord{{ID: 5, Address: "h:5"}}, Remove: []uint64{5}}, refused: true},
		{name: "remove 0", have: have, w: membersWire{Remove: []uint64{0}}, refused: true},
		{name: "admin URL of a recorded member", have: have, w: membersWire{AdminURLs: map[uint64]string{2: "http://127.0.0.1:8082"}},
			put: []MemberRecord{{ID: 2, Address: "h:2", Initial: true, AdminURL: "http://127.0.0.1:8082"}}},
		{name: "admin URL unchanged", have: map[uint64]MemberRecord{2: {ID: 2, Address: "h:2", AdminURL: "https://n2:8443"}},
			w: membersWire{AdminURLs: map[uint64]string{2: "https://n2:8443"}}},
		{name: "admin URL cleared", have: map[uint64]MemberRecord{2: {ID: 2, Address: "h:2", AdminURL: "https://n2:8443"}},
			w: membersWire{AdminURLs: map[uint64]string{2: ""}}, put: []MemberRecord{{ID: 2, Address: "h:2"}}},
		{name: "admin URL of a member not recorded", have: have, w: membersWire{AdminURLs: map[uint64]string{7: "https://n7:8443"}}},
		{name: "admin URL of a member added at once", have: have,
			w:   membersWire{Set: []MemberRecord{{ID: 4, Address: "h:4"}}, AdminURLs: map[uint64]string{4: "https://n4:8443", 1: "http://127.0.0.1:8081"}},
			put: []MemberRecord{{ID: 4, Address: "h:4", AdminURL: "https://n4:8443"}, {ID: 1, Address: "h:1", Initial: true, AdminURL: "http://127.0.0.1:8081"}}},
		{name: "admin URL of a member removed at once", have: have, w: membersWire{Remove: []uint64{2}, AdminURLs: map[uint64]string{2: "https://n2:8443"}}, del: []uint64{2}},
		{name: "admin URL of member 0", have: have, w: membersWire{AdminURLs: map[uint64]string{0: "https://n:1"}}, refused: true},
		{name: "admin URL too long", have: have, w: membersWire{AdminURLs: map[uint64]string{1: "https://" + strings.Repeat("n", maxAdminURL)}}, refused: true},
	} {
		put, del, ok := applyMembers(tc.have, tc.w)
		if ok == tc.refused || !slices.Equal(put, tc.put) || !slices.Equal(del, tc.del) {
			t.Errorf("%s: put %v del %v ok %v; want put %v del %v refused %v", tc.name, put, del, ok, tc.put, tc.del, tc.refused)
		}
	}
}

// TestMetaMembers: member entries are applied by the state machine and
// travel in its snapshots.
func TestMetaMembers(t *testing.T) {
	key := testKey(t, 1)
	node, db := memberNode(t, t.TempDir())
	m := &metaSM{db: db, key: key, apply: node, fail: func(error) {}}
	m.Open(nil)
	entry := func(w membersWire) []byte {
		plain, _ := json.Marshal(w)
		return encodeMeta(metaKindMembers, key, plain)
	}
	out, err := m.Update([]sm.Entry{
		{Index: 1, Cmd: entry(membersWire{Set: []MemberRecord{{ID: 1, Address: "h:1"}, {ID: 2, Address: "h:2"}, {ID: 3, Address: "h:3"}}, IfNone: true})},
		{Index: 2, Cmd: entry(membersWire{Set: []MemberRecord{{ID: 9, Address: "x:9"}}, IfNone: true})},
		{Index: 3, Cmd: entry(membersWire{Remove: []uint64{3}})},
		{Index: 4, Cmd: entry(membersWire{Set: []MemberRecord{{ID: 4, Address: "h:4"}}})},
		{Index: 5, Cmd: entry(membersWire{Set: []MemberRecord{{ID: 0, Address: "h:0"}}})},
		{Index: 6, Cmd: entry(membersWire{AdminURLs: map[uint64]string{4: "https://n4:8443"}})},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{ResultAccepted, ResultAccepted, ResultAccepted, ResultAccepted, ResultBad, ResultAccepted} {
		if out[i].Result.Value != want {
			t.Errorf("entry %d: %d, want %d", i+1, out[i].Result.Value, want)
		}
	}
	ids := func(db *wal.DB) []uint64 {
		recs, err := readMembers(db)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(maps.Keys(recs))
	}
	if got := ids(db); !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Fatalf("recorded %v, want [1 2 4]", got)
	}
	ctx, err := m.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.SaveSnapshot(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	n2, db2 := memberNode(t, t.TempDir())
	m2 := &metaSM{db: db2, key: key, apply: n2, fail: func(error) {}}
	if err := m2.RecoverFromSnapshot(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if got := ids(db2); !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Fatalf("restored %v, want [1 2 4]", got)
	}
	if recs, err := readMembers(db2); err != nil || recs[4].AdminURL != "https://n4:8443" {
		t.Fatalf("restored member 4 = %+v, %v; want its admin URL", recs[4], err)
	}
}

// openMetaSM is a metadata state machine over a fresh member's node.
func openMetaSM(t *testing.T, key *SealKey) (*metaSM, *actors.Node, *wal.DB) {
	t.Helper()
	node, db := memberNode(t, t.TempDir())
	m := &metaSM{db: db, key: key, apply: node, fail: func(error) {}}
	if _, err := m.Open(nil); err != nil {
		t.Fatal(err)
	}
	return m, node, db
}

// A proposal retried after a try that timed out can commit twice (the
// same bytes: proposeTo proposes them again). The second copy answers the
// first one's result and applies nothing: a create is not refused as a
// conflict with itself, and an update does not undo another member's
// change committed between the two copies. Snapshots carry what was
// applied, so a replica restored from one answers a late copy the same.
func TestMetaRetriedProposalAppliesOnce(t *testing.T) {
	key := testKey(t, 1)
	m, node, db := openMetaSM(t, key)
	create := changeCmd(t, key, actors.Change{CreateOnly: true,
		Destinations: []model.Destination{{Slug: "d", URL: "https://example.com/a"}}, NewSigningSecrets: map[string]string{"d": "whsec_a"}})
	put := changeCmd(t, key, actors.Change{
		Destinations: []model.Destination{{Slug: "e", URL: "https://example.com/a"}}, NewSigningSecrets: map[string]string{"e": "whsec_e"}})
	update := changeCmd(t, key, actors.Change{UpdateOnly: true,
		Destinations: []model.Destination{{Slug: "e", URL: "https://example.com/b"}}})
	tok := changeCmd(t, key, actors.Change{Tokens: []actors.TokenRecord{{Name: "ops", Record: []byte(`{"name":"ops"}`)}}})
	missing := changeCmd(t, key, actors.Change{DeleteSources: []string{"nope"}})
	out, err := m.Update([]sm.Entry{
		{Index: 1, Cmd: create}, {Index: 2, Cmd: put}, {Index: 3, Cmd: update},
		{Index: 4, Cmd: slices.Clone(create)}, {Index: 5, Cmd: slices.Clone(put)},
		{Index: 6, Cmd: tok}, {Index: 7, Cmd: slices.Clone(tok)},
		{Index: 8, Cmd: missing}, {Index: 9, Cmd: slices.Clone(missing)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{ResultAccepted, ResultAccepted, ResultAccepted, ResultAccepted, ResultAccepted, ResultAccepted, ResultAccepted, ResultRefused, ResultRefused}
	for i, e := range out {
		if e.Result.Value != want[i] {
			t.Errorf("entry %d: result %d (%v), want %d", e.Index, e.Result.Value, decodeRefusal(e.Result.Data), want[i])
		}
	}
	if err := decodeRefusal(out[8].Result.Data); !errors.Is(err, actors.ErrNotFound) {
		t.Errorf("the copy of a refused change: %v, want the first one's refusal (not found)", err)
	}
	if d := node.Snapshot().Destinations["e"]; d.URL != "https://example.com/b" {
		t.Errorf("destination URL %q after a late copy of its first write: the update in between was undone", d.URL)
	}
	if st, _ := db.ReadMetaState(); st.Applied != 9 {
		t.Errorf("applied %d, want 9", st.Applied)
	}

	// A replica restored from a snapshot answers a copy the same.
	ctx, err := m.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.SaveSnapshot(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	m2, n2, _ := openMetaSM(t, key)
	if err := m2.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	out, err = m2.Update([]sm.Entry{{Index: 10, Cmd: slices.Clone(put)}, {Index: 11, Cmd: slices.Clone(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range out {
		if e.Result.Value != ResultAccepted {
			t.Errorf("restored replica, copy at %d: result %d (%v), want the first one's (accepted)", e.Index, e.Result.Value, decodeRefusal(e.Result.Data))
		}
	}
	if d := n2.Snapshot().Destinations["e"]; d.URL != "https://example.com/b" {
		t.Errorf("restored replica: destination URL %q, want the update's", d.URL)
	}
}

// Records of applied entries are pruned by index alone, proposalSpan
// entries behind, so they stay bounded and equal on every replica.
func TestMetaProposalRecordsPruned(t *testing.T) {
	key := testKey(t, 1)
	m, _, db := openMetaSM(t, key)
	first := changeCmd(t, key, actors.Change{DeleteSources: []string{"nope"}})
	var ents []sm.Entry
	for i := uint64(1); i <= proposalSpan+pruneEvery; i++ {
		cmd := first
		if i > 1 {
			cmd = changeCmd(t, key, actors.Change{DeleteSources: []string{"nope"}})
		}
		ents = append(ents, sm.Entry{Index: i, Cmd: cmd})
	}
	if _, err := m.Update(ents); err != nil {
		t.Fatal(err)
	}
	n := 0
	db.LoadConfig(wal.KindProposal, func(string, []byte) error { n++; return nil })
	if n != proposalSpan {
		t.Errorf("%d records after %d entries, want the last %d", n, len(ents), proposalSpan)
	}
	if _, again, err := m.prior(entryID(first)); err != nil || again {
		t.Errorf("the first entry's record: %v %v, want pruned", again, err)
	}
}

// slowFirstApply is a member's node whose first committed change takes
// longer to apply than one try of a proposal waits.
type slowFirstApply struct {
	*actors.Node
	delay time.Duration
	calls atomic.Int32
}

func (s *slowFirstApply) ApplyCommitted(c actors.Change, b *wal.Batch, commit func() error) error {
	if s.calls.Add(1) == 1 {
		time.Sleep(s.delay)
	}
	return s.Node.ApplyCommitted(c, b, commit)
}

// Through real raft: a change whose apply outlasts a one-second try is
// proposed again by proposeTo, both copies commit, and the caller still
// hears that its create succeeded (not 409 from its own first copy), and
// the node applied it once.
func TestMetaRetriedProposalAnswersOnce(t *testing.T) {
	node, db := memberNode(t, t.TempDir())
	slow := &slowFirstApply{Node: node, delay: 1500 * time.Millisecond}
	addr := freePort(t)
	c, err := Start(Config{NodeID: 1, RaftAddr: addr, Members: map[uint64]string{1: addr}, Dir: t.TempDir(), DB: db,
		RTT: 10 * time.Millisecond, Configs: slow, SealKey: testKey(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	err = node.Apply(actors.Change{CreateOnly: true, Destinations: []model.Destination{{Slug: "d", URL: "https://example.com/h"}}})
	if err != nil {
		t.Fatalf("a create applied once answered %v", err)
	}
	if got := slow.calls.Load(); got != 1 {
		t.Errorf("the node applied %d changes, want 1 (the retried copy answers the first one's result)", got)
	}
	if _, ok := node.Snapshot().Destinations["d"]; !ok {
		t.Error("the destination is not there")
	}
}

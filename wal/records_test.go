package wal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

// sameEvent compares two events field by field; nil and empty lists are
// the same.
func sameEvent(a, b *Event) error {
	switch {
	case a.Partition != b.Partition || a.Seq != b.Seq:
		return fmt.Errorf("id %s vs %s", a.ID(), b.ID())
	case a.Source != b.Source || a.IdemKey != b.IdemKey || a.EventType != b.EventType:
		return fmt.Errorf("strings %q/%q/%q vs %q/%q/%q", a.Source, a.IdemKey, a.EventType, b.Source, b.IdemKey, b.EventType)
	case !a.ReceivedAt.Equal(b.ReceivedAt):
		return fmt.Errorf("received %v vs %v", a.ReceivedAt, b.ReceivedAt)
	case len(a.Headers) != len(b.Headers) || (len(a.Headers) > 0 && !reflect.DeepEqual(a.Headers, b.Headers)):
		return fmt.Errorf("headers %q vs %q", a.Headers, b.Headers)
	case len(a.Destinations) != len(b.Destinations) || (len(a.Destinations) > 0 && !reflect.DeepEqual(a.Destinations, b.Destinations)):
		return fmt.Errorf("destinations %q vs %q", a.Destinations, b.Destinations)
	case !bytes.Equal(a.Body, b.Body):
		return fmt.Errorf("body %q vs %q", a.Body, b.Body)
	}
	return nil
}

func TestEventRecordRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0, 0xff, 'x'}, 1<<18)
	tests := []struct {
		name string
		e    Event
	}{
		{"empty", Event{}},
		{"zero time", Event{Source: "s", IdemKey: "k"}},
		{"before 1970", Event{Source: "s", ReceivedAt: time.Date(1950, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"nanoseconds", Event{Source: "s", ReceivedAt: time.Unix(1700000000, 999999999).UTC()}},
		{"binary strings", Event{Source: "\x00\xff", IdemKey: "\xff\xfe\x00", EventType: "a\x00b"}},
		{"headers in order, repeated", Event{Headers: [][2]string{{"B", "1"}, {"A", "2"}, {"B", "3"}, {"", ""}}}},
		{"destinations", Event{Destinations: []string{"d1", "d2", "d1"}}},
		{"empty body", Event{Body: []byte{}}},
		{"large body", Event{Body: big}},
		{"everything", Event{Partition: 65535, Seq: math.MaxUint64, Source: "gh", IdemKey: "delivery-1", EventType: "push",
			ReceivedAt: time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC), Headers: [][2]string{{"X-Hub-Signature-256", "sha256=00"}},
			Body: []byte(`{"a":1}`), Destinations: []string{"app"}}},
	}
	db := openTest(t, t.TempDir())
	defer db.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := appendEvent(nil, &tt.e)
			if n := eventSize(&tt.e); n != len(enc) {
				t.Fatalf("eventSize = %d, record is %d bytes", n, len(enc))
			}
			got, err := decodeEvent(tt.e.Partition, tt.e.Seq, enc)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.e
			if want.ReceivedAt.IsZero() {
				// The zero time is stored as UnixNano of it, which is
				// outside int64's range: pin what comes back.
				want.ReceivedAt = time.Unix(0, time.Time{}.UnixNano()).UTC()
			}
			if err := sameEvent(got, &want); err != nil {
				t.Fatal(err)
			}
			// Through PutEvent, which encodes in place in the batch.
			e := tt.e
			e.Partition %= uint16(db.Partitions())
			b := db.NewBatch()
			b.PutEvent(&e)
			if err := db.CommitWait(b); err != nil {
				t.Fatal(err)
			}
			stored, err := db.GetEvent(e.Partition, e.Seq)
			if err != nil {
				t.Fatal(err)
			}
			want.Partition = e.Partition
			if err := sameEvent(stored, &want); err != nil {
				t.Fatalf("stored: %v", err)
			}
			want.Partition = tt.e.Partition
			if got.ReceivedAt.Location() != time.UTC {
				t.Fatalf("decoded time in %v, want UTC", got.ReceivedAt.Location())
			}
			// The decoded body must not alias the encoded bytes.
			if len(got.Body) > 0 {
				enc[len(enc)-1] ^= 0xff
				if got.Body[len(got.Body)-1] != want.Body[len(want.Body)-1] {
					t.Fatal("decoded body aliases the stored bytes")
				}
			}
		})
	}
}

// TestEventRecordFormatPinned: the encoding is on disk. This is the exact
// record of one event; change it only with a new format byte.
func TestEventRecordFormatPinned(t *testing.T) {
	e := &Event{Source: "s", IdemKey: "k", EventType: "t", ReceivedAt: time.Unix(0, 1),
		Headers: [][2]string{{"h", "v"}}, Destinations: []string{"d"}, Body: []byte("b")}
	want := []byte{eventFormat, 2, 1, 's', 1, 'k', 1, 't', 1, 1, 'h', 1, 'v', 1, 1, 'd', 1, 'b'}
	if got := appendEvent(nil, e); !bytes.Equal(got, want) {
		t.Fatalf("record = %v, want %v", got, want)
	}
}

func TestDecodeEventRejectsBadRecords(t *testing.T) {
	good := appendEvent(nil, &Event{Source: "s", Headers: [][2]string{{"a", "b"}}, Destinations: []string{"d"}, Body: []byte("body")})
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"unknown format", append([]byte{eventFormat + 1}, good[1:]...)},
		{"format zero", append([]byte{0}, good[1:]...)},
		{"varint overflow", append([]byte{eventFormat}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"string longer than record", []byte{eventFormat, 0, 100, 's'}},
		{"header count larger than record", []byte{eventFormat, 0, 0, 0, 0, 0xff, 0xff, 0x03}},
		{"destination count larger than record", []byte{eventFormat, 0, 0, 0, 0, 0, 0xff, 0xff, 0x03}},
		{"body longer than record", []byte{eventFormat, 0, 0, 0, 0, 0, 0, 5, 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeEvent(1, 2, tt.b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeEvent = %v, want ErrCorrupt", err)
			}
		})
	}
	// Every strict prefix of a good record is truncated.
	for i := range good {
		if _, err := decodeEvent(0, 1, good[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix %d: %v, want ErrCorrupt", i, err)
		}
	}
}

// FuzzEventRecordRoundTrip: whatever an event holds, it comes back as it
// went in.
func FuzzEventRecordRoundTrip(f *testing.F) {
	f.Add(uint16(1), uint64(2), "gh", "id-1", "push", int64(1700000000123456789), "Content-Type", "application/json", "app", []byte(`{"a":1}`))
	f.Add(uint16(0), uint64(0), "", "", "", int64(-1), "", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, part uint16, seq uint64, source, key, typ string, at int64, hk, hv, dest string, body []byte) {
		e := &Event{Partition: part, Seq: seq, Source: source, IdemKey: key, EventType: typ,
			ReceivedAt: time.Unix(0, at).UTC(), Headers: [][2]string{{hk, hv}, {hv, hk}}, Destinations: []string{dest}, Body: body}
		enc := appendEvent(nil, e)
		if n := eventSize(e); n != len(enc) {
			t.Fatalf("eventSize = %d, record is %d bytes", n, len(enc))
		}
		got, err := decodeEvent(part, seq, enc)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameEvent(got, e); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDeliveryRecordRoundTrip(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	recs := []*Delivery{
		{Destination: "app", EventID: EventID(1, 1), Status: StatusPending, Attempts: []Attempt{}, UpdatedAt: at},
		{Destination: "app", EventID: EventID(1, 2), Status: StatusPending, QSeq: 9, NextAt: at.Add(time.Minute), UpdatedAt: at,
			Attempts: []Attempt{{N: 1, At: at, DurationMS: 1.5, StatusCode: 503, Response: "busy\x00\xff"}}}, // invalid UTF-8 reads back as U+FFFD through JSON
		{Destination: "app", EventID: EventID(1, 3), Status: StatusDead, AttemptsBase: 1, ReplayID: "rpl_1", UpdatedAt: at,
			Attempts: []Attempt{{N: 1, At: at, Error: "dial tcp: refused"}, {N: 2, At: at, StatusCode: 500, ReplayID: "rpl_1"}}},
		{Destination: "app", EventID: EventID(1, 4), Status: StatusDelivered, UpdatedAt: at,
			Attempts: []Attempt{{N: 1, At: at, StatusCode: 204}}},
	}
	b := db.NewBatch()
	for i, r := range recs {
		b.PutDelivery(uint64(i+1), r)
	}
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	for i, want := range recs {
		got, err := db.GetDelivery("app", uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		// Times come back in UTC with their nanoseconds; compare the
		// records as a reader of the API sees them.
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		gj = bytes.ReplaceAll(gj, []byte(`\ufffd`), []byte("\ufffd"))
		wj = bytes.ReplaceAll(wj, []byte(`\ufffd`), []byte("\ufffd"))
		if string(gj) != string(wj) {
			t.Fatalf("record %d:\n got %s\nwant %s", i+1, gj, wj)
		}
	}
	// Only the dead one is in the dead-letter index.
	ids, next, err := db.ListDead("app", 0, 10)
	if err != nil || next != 0 || len(ids) != 1 || ids[0] != EventID(1, 3) {
		t.Fatalf("ListDead = %v, %d, %v", ids, next, err)
	}
	if _, err := db.GetDelivery("app", 99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
}

// TestReadsReportCorruption: stored bytes that do not decode are ErrCorrupt
// with the key named, never a panic and never a silent zero value.
func TestReadsReportCorruption(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	defer func() { db.Close() }()
	part := db.DestPartition("app")
	raw := func(k, v []byte) {
		t.Helper()
		b := db.NewBatch()
		b.b.Set(k, v, nil)
		if err := db.CommitWait(b); err != nil {
			t.Fatal(err)
		}
	}
	raw(dedupeKey(0, "s", "k"), []byte("short"))
	raw(destKey(part, subDelivery, "app", 1), []byte("{not json"))
	raw(destKey(part, subQueue, "app", 1), []byte{1, 2, 3})
	raw(eventKey(0, 5), []byte{eventFormat, 0xff})
	raw(outboxKey(1, 0, "")[:4+3], nil) // shorter than a sequence
	raw(auditKey(1), []byte("{"))
	// Raw writes pass by the dedupe filter, which learns the damaged key
	// from the disk on the next open, as it would any key.
	db.Close()
	db = openTest(t, dir)
	waitFilterLive(t, db)

	checks := map[string]func() error{
		"GetDedupe":   func() error { _, _, err := db.GetDedupe(0, "s", "k"); return err },
		"GetDelivery": func() error { _, err := db.GetDelivery("app", 1); return err },
		"QueuePage":   func() error { _, err := db.QueuePage("app", 0, 10); return err },
		"GetEvent":    func() error { _, err := db.GetEvent(0, 5); return err },
		"ScanOutbox":  func() error { return db.ScanOutbox(1, func(OutboxEntry) {}) },
		"ListAudit":   func() error { _, _, err := db.ListAudit(0, 10, nil); return err },
		"ListEvents":  func() error { _, _, err := db.ListEvents(0, 10, nil); return err },
	}
	for name, f := range checks {
		if err := f(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s = %v, want ErrCorrupt", name, err)
		}
	}

	// A queue key without the slug terminator cannot name a destination.
	db2 := openTest(t, t.TempDir())
	defer db2.Close()
	b := db2.NewBatch()
	b.b.Set(append(partKey(0, subQueue, 0), "noterminator"...), appendQueueValue(nil, 0, 1), nil)
	if err := db2.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	if _, err := db2.DestsWithPending(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DestsWithPending = %v, want ErrCorrupt", err)
	}
}

func TestReadsAfterCloseAnswerErrClosed(t *testing.T) {
	db := openTest(t, t.TempDir())
	db.Close()
	checks := map[string]func() error{
		"GetEvent":         func() error { _, err := db.GetEvent(0, 1); return err },
		"GetDelivery":      func() error { _, err := db.GetDelivery("app", 1); return err },
		"QueuePage":        func() error { _, err := db.QueuePage("app", 0, 1); return err },
		"LastQSeq":         func() error { _, err := db.LastQSeq("app"); return err },
		"DestsWithPending": func() error { _, err := db.DestsWithPending(); return err },
		"ListEvents":       func() error { _, _, err := db.ListEvents(0, 1, nil); return err },
		"ListAudit":        func() error { _, _, err := db.ListAudit(0, 1, nil); return err },
		"ExpireEvents":     func() error { _, err := db.ExpireEvents(time.Now(), 1); return err },
		"CommitWait":       func() error { return db.CommitWait(db.NewBatch()) },
		"WaitCommitted":    db.WaitCommitted,
	}
	for name, f := range checks {
		if err := f(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// Records written as JSON before the binary layout read on: a data dir
// keeps its delivery history, its retention and its event lists.
func TestDeliveryRecordsWrittenAsJSONStillRead(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	rec := Delivery{Destination: "app", EventID: EventID(3, 7), Status: StatusDelivered, QSeq: 4, UpdatedAt: at,
		Attempts: []Attempt{{N: 1, At: at, DurationMS: 2.25, StatusCode: 204}}}
	raw, _ := json.Marshal(rec)
	b := db.NewBatch()
	b.b.Set(destKey(db.DestPartition("app"), subDelivery, "app", 7), raw, nil)
	if err := db.CommitWait(b); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetDelivery("app", 7)
	if err != nil || !reflect.DeepEqual(*got, rec) {
		t.Fatalf("GetDelivery = %+v, %v\nwant %+v", got, err, rec)
	}
	if part, ok := recordEventPart(raw); !ok || part != 3 {
		t.Fatalf("recordEventPart(JSON) = %d, %v", part, ok)
	}
	if part, ok := recordEventPart(appendDelivery(nil, &rec)); !ok || part != 3 {
		t.Fatalf("recordEventPart(binary) = %d, %v", part, ok)
	}
	db.closeMu.RLock()
	status, err := db.deliveryStatusLocked("app", 7)
	db.closeMu.RUnlock()
	if err != nil || status != StatusDelivered {
		t.Fatalf("deliveryStatusLocked = %q, %v", status, err)
	}
}

func TestDeliveryRecordLayoutPinned(t *testing.T) {
	r := Delivery{Destination: "d", EventID: "e", Status: StatusDelivered, QSeq: 2, UpdatedAt: time.Unix(0, 1),
		Attempts: []Attempt{{N: 1, At: time.Unix(0, 1), DurationMS: 1, StatusCode: 204}}}
	want := "01" + "0264" + "0265" + "23" + "02" + "00" + "00" + "00" + "0102" + "01" +
		"01" + "0102" + "3ff0000000000000" + "cc01" + "00" + "00" + "00"
	if got := fmt.Sprintf("%x", appendDelivery(nil, &r)); got != want {
		t.Fatalf("layout:\n got %s\nwant %s", got, want)
	}
}

func FuzzDeliveryRecord(f *testing.F) {
	f.Add("app", "evt_1", "delivered", uint64(3), int64(1700000000123456789), 1.5, 204, "ok\xff", "", []byte{deliveryFormat, 1})
	f.Fuzz(func(t *testing.T, dest, id, status string, qseq uint64, at int64, ms float64, code int, resp, errText string, raw []byte) {
		if ms != ms { // NaN never equals itself; its bits still round-trip
			ms = 0
		}
		r := Delivery{Destination: dest, EventID: id, Status: status, QSeq: qseq, UpdatedAt: time.Unix(0, at).UTC(),
			Attempts: []Attempt{{N: 1, At: time.Unix(0, at).UTC(), DurationMS: ms, StatusCode: code & 0xffff, Response: resp, Error: errText}}}
		got, err := decodeDelivery(appendDelivery(nil, &r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("got %+v, %v\nwant %+v", got, err, r)
		}
		decodeDelivery(raw) // never panics
		recordEventPart(raw)
	})
}

package actors

import (
	"testing"
	"time"

	"github.com/webhookops/webhookops/wal"
	"github.com/webhookops/webhookops/wal/model"
)

func TestEventStatus(t *testing.T) {
	P, D, X := model.EventPending, model.EventDelivered, model.EventDeadLettered
	for _, c := range []struct {
		in   []model.EventStatus
		want model.EventStatus
	}{
		{nil, model.EventNoDestinations},
		{[]model.EventStatus{D}, D},
		{[]model.EventStatus{D, D}, D},
		{[]model.EventStatus{X}, X},
		{[]model.EventStatus{D, X}, X},
		{[]model.EventStatus{X, P}, P},
		{[]model.EventStatus{P, D}, P},
	} {
		if got := EventStatus(c.in); got != c.want {
			t.Errorf("EventStatus(%v) = %s; want %s", c.in, got, c.want)
		}
	}
}

func TestMatchEventRecord(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := &wal.Event{Source: "shop", IdemKey: "k1", EventType: "invoice.paid", ReceivedAt: t0, Destinations: []string{"app", "crm"}}
	for _, c := range []struct {
		name string
		f    model.EventFilter
		want bool
	}{
		{"empty", model.EventFilter{}, true},
		{"source", model.EventFilter{Source: "shop"}, true},
		{"other source", model.EventFilter{Source: "gh"}, false},
		{"destination", model.EventFilter{Destination: "crm"}, true},
		{"other destination", model.EventFilter{Destination: "erp"}, false},
		{"type pattern", model.EventFilter{EventType: "invoice.*"}, true},
		{"other type", model.EventFilter{EventType: "order.*"}, false},
		{"since inclusive", model.EventFilter{Since: t0}, true},
		{"since after", model.EventFilter{Since: t0.Add(time.Nanosecond)}, false},
		{"until exclusive", model.EventFilter{Until: t0}, false},
		{"until after", model.EventFilter{Until: t0.Add(time.Nanosecond)}, true},
		{"key", model.EventFilter{IdempotencyKey: "k1"}, true},
		{"other key", model.EventFilter{IdempotencyKey: "k2"}, false},
		{"status is not the record's to answer", model.EventFilter{Status: model.EventDelivered}, true},
	} {
		if got := MatchEventRecord(&c.f, e); got != c.want {
			t.Errorf("%s: MatchEventRecord = %v; want %v", c.name, got, c.want)
		}
	}
}

package wal

import (
	"testing"
	"time"
)

// BenchmarkGroupCommit: many writers, each waiting for its own synced
// commit of one event's keys, as ingest shards do. events/s is the figure.
func BenchmarkGroupCommit(b *testing.B) {
	db, err := Open(b.TempDir(), Config{Partitions: 64})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	body := make([]byte, 512)
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			seq := db.NextSeq()
			e := &Event{Partition: uint16(seq % 64), Seq: seq, Source: "s", IdemKey: "k", ReceivedAt: time.Now(), Body: body}
			bt := db.NewBatch()
			bt.PutEvent(e)
			bt.PutDedupe(e.Partition, "s", string(rune(seq)), seq, e.ReceivedAt)
			bt.PutOutbox(e.Partition, seq, "d")
			bt.Audit(AuditEntry{Action: "event.received", ObjectType: "event", ObjectID: e.ID()})
			if err := db.CommitWait(bt); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

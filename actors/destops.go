package actors

import (
	"github.com/webhookops/webhookops/actors/internal/destsm"
	"github.com/webhookops/webhookops/wal"
)

// AddDestOp adds one of a destination's own writes (queue, delivery record,
// dead-letter index: the keys in the destination's partition) to b, and
// reports whether op was one of those. The local writer and the cluster's
// replicated writer share it; each handles outbox and audit ops its way.
func AddDestOp(b *wal.Batch, dest string, op destsm.Op) bool {
	switch op := op.(type) {
	case destsm.PutQueue:
		b.PutQueue(dest, op.QSeq, op.Part, op.Seq)
	case destsm.DeleteQueue:
		b.DeleteQueue(dest, op.QSeq, op.Seq)
	case destsm.PutDelivery:
		b.PutDelivery(op.Seq, &op.Rec)
	case destsm.DeleteDead:
		b.DeleteDead(dest, op.Seq)
	default:
		return false
	}
	return true
}

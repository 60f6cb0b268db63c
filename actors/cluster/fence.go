package cluster

// Fence is a partition's owner as its state machine knows it: the highest
// takeover term applied and the node that took over in it. Term 0 means no
// owner yet.
type Fence struct {
	Term uint64
	Node uint64
}

// Admit decides whether an owner entry (a takeover or a write) stamped
// with (term, node) is applied, and what the fence is afterwards. It is the
// whole of ownership fencing, and it has no I/O.
//
// A takeover is admitted when its term is above the fence (a new leader),
// or repeats the current owner's own takeover (the owner retrying after a
// timeout). Raft elects at most one leader per term, so the same term from
// another node is refused rather than trusted.
//
// A write is admitted only from the current owner in its term. A write
// from a deposed owner (a lower term: it has not noticed it lost the
// leadership; dragonboat forwards proposals from any replica) is refused,
// and so is a write from a higher term whose takeover has not been
// applied: an owner writes only after its takeover is in.
func (f Fence) Admit(takeover bool, term, node uint64) (ok bool, next Fence) {
	if term == 0 || node == 0 {
		return false, f
	}
	if takeover {
		switch {
		case term > f.Term:
			return true, Fence{Term: term, Node: node}
		case term == f.Term && node == f.Node:
			return true, f
		default:
			return false, f
		}
	}
	return term == f.Term && node == f.Node, f
}

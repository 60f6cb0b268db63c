package cluster

import "testing"

func TestFenceAdmit(t *testing.T) {
	owned := Fence{Term: 5, Node: 2}
	tests := []struct {
		name     string
		fence    Fence
		takeover bool
		term     uint64
		node     uint64
		ok       bool
		next     Fence
	}{
		{"first takeover", Fence{}, true, 1, 1, true, Fence{1, 1}},
		{"newer leader takes over", owned, true, 6, 3, true, Fence{6, 3}},
		{"newer term, same node", owned, true, 9, 2, true, Fence{9, 2}},
		{"owner repeats its takeover", owned, true, 5, 2, true, owned},
		{"another node in the same term", owned, true, 5, 3, false, owned},
		{"deposed leader's late takeover", owned, true, 4, 1, false, owned},
		{"owner writes", owned, false, 5, 2, true, owned},
		{"deposed owner writes", owned, false, 4, 1, false, owned},
		{"deposed owner of the same node writes", owned, false, 4, 2, false, owned},
		{"write before its takeover is in", owned, false, 6, 3, false, owned},
		{"write from another node in the owner's term", owned, false, 5, 3, false, owned},
		{"write to a partition nobody owns", Fence{}, false, 1, 1, false, Fence{}},
		{"zero term", Fence{}, true, 0, 1, false, Fence{}},
		{"zero node", Fence{}, true, 1, 0, false, Fence{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, next := tt.fence.Admit(tt.takeover, tt.term, tt.node)
			if ok != tt.ok || next != tt.next {
				t.Fatalf("Admit = %v, %+v; want %v, %+v", ok, next, tt.ok, tt.next)
			}
		})
	}
}

package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestQUICSinks: both bare QUIC baselines count exactly what was written
// on streams that were closed, the two-process one in a child that ends
// with its stdin.
func TestQUICSinks(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inProc, err := startQUICSink()
	if err != nil {
		t.Fatal(err)
	}
	defer inProc.Close()
	child, pid, err := startQUICSinkProcess(context.Background(), self)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	if pid <= 0 || pid == os.Getpid() {
		t.Fatalf("sink pid %d: not a child", pid)
	}
	for _, q := range []*quicSink{inProc, child} {
		tg := q.target("bare")
		chunk := make([]byte, 100_000)
		var want int64
		for range 3 {
			w, err := tg.dial(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for range 7 {
				if _, err := w.Write(chunk); err != nil {
					t.Fatal(err)
				}
				want += int64(len(chunk))
			}
			w.Close()
		}
		tg.settle()
		if got := tg.received(); got != want {
			t.Errorf("sink counted %d bytes, %d were written", got, want)
		}
	}
	// The child ends when its stdin closes.
	done := make(chan struct{})
	go func() {
		child.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the sink process did not end after its stdin closed")
	}
}

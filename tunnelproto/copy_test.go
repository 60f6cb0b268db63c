package tunnelproto

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fullReader fills every read until n bytes are out, then says EOF; it
// counts its reads.
type fullReader struct {
	n     atomic.Int64
	reads atomic.Int64
}

func (r *fullReader) Read(p []byte) (int, error) {
	left := r.n.Load()
	if left == 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), left)
	r.n.Add(-k)
	r.reads.Add(1)
	return int(k), nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestCopyBulkReadsWhileWriting: once a copy moves bulk, the source is read
// while a write is under way, not after it: a QUIC stream's Write returns
// only once the packer has taken the data, and with reads waiting on it the
// packer would idle during every read from the other side.
func TestCopyBulkReadsWhileWriting(t *testing.T) {
	const size = 8 * largeCopyBuf
	src := &fullReader{}
	src.n.Store(size)
	var dst bytes.Buffer
	first := true
	w := writerFunc(func(p []byte) (int, error) {
		if len(p) == largeCopyBuf && first {
			first = false
			// Reads so far: the small one, the one being written; the
			// next one must not wait for this write to return.
			for deadline := time.Now().Add(5 * time.Second); src.reads.Load() < 3; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					return 0, errors.New("the source was not read again before this write returned")
				}
			}
		}
		return dst.Write(p)
	})
	n, err := copyAdaptive(w, src, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if n != size || dst.Len() != size {
		t.Fatalf("copied %d, wrote %d, want %d", n, dst.Len(), size)
	}
}

// TestCopyBulkOrder: what the bulk copy writes is what was read, in order,
// across read sizes that do not match the buffers.
func TestCopyBulkOrder(t *testing.T) {
	data := make([]byte, 5*largeCopyBuf+12345)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	var dst bytes.Buffer
	n, err := copyAdaptive(&dst, io.MultiReader(bytes.NewReader(data[:smallCopyBuf]), &oddReader{r: bytes.NewReader(data[smallCopyBuf:])}), func() {})
	if err != nil || n != int64(len(data)) {
		t.Fatalf("copyAdaptive = %d, %v; want %d, nil", n, err, len(data))
	}
	if !bytes.Equal(dst.Bytes(), data) {
		t.Fatal("copied bytes differ from the source")
	}
}

// oddReader returns reads of varying sizes, none a buffer's size.
type oddReader struct {
	r *bytes.Reader
	i int
}

func (o *oddReader) Read(p []byte) (int, error) {
	o.i++
	k := min(len(p), 1000+o.i*37777%(largeCopyBuf-1))
	return o.r.Read(p[:k])
}

// blockingReader fills its first reads, then blocks until closed.
type blockingReader struct {
	fullReader
	once   sync.Once
	closed chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.n.Load() > 0 {
		return b.fullReader.Read(p)
	}
	<-b.closed
	return 0, errors.New("closed")
}

func (b *blockingReader) close() { b.once.Do(func() { close(b.closed) }) }

// TestCopyBulkWriteError: a failed write aborts the copy even while its
// reader waits on a source with nothing to say, and the write's error is
// what comes back.
func TestCopyBulkWriteError(t *testing.T) {
	src := &blockingReader{closed: make(chan struct{})}
	src.n.Store(smallCopyBuf + 3*largeCopyBuf)
	werr := errors.New("peer gone")
	var writes int
	w := writerFunc(func(p []byte) (int, error) {
		writes++
		if writes == 3 {
			return 0, werr
		}
		return len(p), nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := copyAdaptive(w, src, src.close)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, werr) {
			t.Fatalf("err = %v, want %v", err, werr)
		}
	case <-time.After(10 * time.Second):
		src.close()
		<-done
		t.Fatal("copy did not end after its write failed")
	}
}

// TestCopyBulkShortWrite: a writer that takes less than it was given is an
// error, not silent loss.
func TestCopyBulkShortWrite(t *testing.T) {
	src := &fullReader{}
	src.n.Store(4 * largeCopyBuf)
	w := writerFunc(func(p []byte) (int, error) {
		if len(p) == largeCopyBuf {
			return len(p) - 1, nil
		}
		return len(p), nil
	})
	if _, err := copyAdaptive(w, src, func() {}); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("err = %v, want io.ErrShortWrite", err)
	}
}

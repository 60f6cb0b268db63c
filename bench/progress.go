package bench

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress draws a bar over a phase's expected length, refreshed from the
// phase's counters by one goroutine that stop waits for.
type progress struct {
	stopc chan struct{}
	done  chan struct{}
}

// startProgress shows desc and status() on w for a phase expected to last
// about total. A nil w shows nothing.
func startProgress(w io.Writer, desc string, total time.Duration, status func() string) *progress {
	p := &progress{stopc: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(p.done)
		return p
	}
	bar := progressbar.NewOptions64(max(total.Milliseconds(), 1),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(false),
	)
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stopc:
				_ = bar.Finish()
				_, _ = io.WriteString(w, "\r\033[K") // leave the line clean for the table
				return
			case <-t.C:
				bar.Describe(desc + " " + status())
				_ = bar.Set64(min(time.Since(start).Milliseconds(), total.Milliseconds()))
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	select {
	case <-p.stopc:
	default:
		close(p.stopc)
	}
	<-p.done
}

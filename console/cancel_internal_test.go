package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// longRecording is an asciicast of n one-line events, 10 ms apart.
func longRecording(n int) string {
	var b strings.Builder
	b.WriteString(`{"version": 2, "width": 80, "height": 24}` + "\n")
	for i := range n {
		fmt.Fprintf(&b, "[%d.%02d, \"o\", \"line %d\\r\\n\"]\n", i/100, i%100, i)
	}
	return b.String()
}

// TestWindowCancelled: a window cut whose request is gone stops reading
// (a seek far into a long recording must not burn CPU for nobody), both
// while it skips to from and while it fills the window.
func TestWindowCancelled(t *testing.T) {
	rec := longRecording(20 * ctxEvery)
	tests := []struct {
		name         string
		from, window float64
	}{
		{name: "skipping to a far seek", from: 1e6, window: 60},
		{name: "filling a window", from: 0, window: 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newCursor(strings.NewReader(rec))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err = c.window(ctx, io.Discard, tt.from, tt.window)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("window under a cancelled context = %v, want context.Canceled", err)
			}
			if c.last > float64(2*ctxEvery)/100 {
				t.Errorf("the cut read on to %v s after its request was gone", c.last)
			}
		})
	}
}

// TestOneWindowPerTicket: a new window request of a page cancels the one
// still being cut; the end of an older request leaves the newer alone.
func TestOneWindowPerTicket(t *testing.T) {
	var cs cursors
	first, doneFirst := cs.begin(context.Background(), "ticket|s1")
	other, doneOther := cs.begin(context.Background(), "ticket2|s1")
	defer doneOther()
	second, doneSecond := cs.begin(context.Background(), "ticket|s1")
	defer doneSecond()
	if first.Err() == nil {
		t.Error("the first window of a ticket still runs after a second began")
	}
	doneFirst()
	if second.Err() != nil || other.Err() != nil {
		t.Errorf("second = %v, other ticket = %v: want both running", second.Err(), other.Err())
	}
}

type countCloser struct{ n atomic.Int32 }

func (c *countCloser) Close() error { c.n.Add(1); return nil }

// TestIdleCursorsClosed: a kept cursor that no window uses again is
// closed by the cache's timer, with no other request needed.
func TestIdleCursorsClosed(t *testing.T) {
	cs := cursors{idle: 50 * time.Millisecond}
	c, err := newCursor(strings.NewReader(longRecording(10)))
	if err != nil {
		t.Fatal(err)
	}
	cl := &countCloser{}
	c.closer = cl
	cs.put("ticket|s1", c, true)
	deadline := time.Now().Add(5 * time.Second)
	for cl.n.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if cl.n.Load() != 1 {
		t.Fatalf("idle cursor closed %d times, want once", cl.n.Load())
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.m) != 0 || cs.timer != nil {
		t.Errorf("after the sweep: %d cursors kept, timer %v; want none", len(cs.m), cs.timer)
	}
}

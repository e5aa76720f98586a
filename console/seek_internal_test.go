package console

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/sessionlog"
)

// seekRecording writes a recording of both formats through sessionlog's
// Writer: 60,000 lines of output every 3 ms (many frames), resizes and
// input among them.
func seekRecording(t *testing.T, uncompressed bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	clock := testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	w, err := sessionlog.NewWriter(nopSyncer{&buf}, sessionlog.Header{Version: 2, Width: 80, Height: 24},
		sessionlog.WriterOptions{Clock: clock.Now, SyncInterval: time.Hour, Uncompressed: uncompressed})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 60000 {
		clock.Advance(3 * time.Millisecond)
		switch {
		case i%9000 == 4000:
			err = w.Resize(40+rng.IntN(100), 10+rng.IntN(50))
		case i%97 == 0:
			err = w.Input([]byte("r"))
		default:
			err = w.Output(fmt.Appendf(nil, "\x1b[3%dmline %d\x1b[0m %s\r\n", i%8, i, strings.Repeat("y", rng.IntN(90))))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type nopSyncer struct{ *bytes.Buffer }

func (nopSyncer) Sync() error { return nil }

// readingWindow is the window at from as it was cut before SkipTo: every
// event before from read and consumed one by one, up to the first at or
// after from, which the cursor holds (peeked), so it skips nothing.
func readingWindow(t *testing.T, c *cursor, from, window float64) string {
	t.Helper()
	for {
		e, err := c.peek()
		if err != nil {
			t.Fatal(err)
		}
		if e == nil || e.Time >= from {
			break
		}
		c.consume()
	}
	var b bytes.Buffer
	if _, err := c.window(context.Background(), &b, from, window); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSeekWindowEqualsReadWindow: a window cut after SkipTo (prelude,
// terminal size, events) is byte for byte the window cut by reading every
// event before it, from a new cursor and from a cursor that played an
// earlier window (a seek forward), on compressed and plain recordings.
func TestSeekWindowEqualsReadWindow(t *testing.T) {
	for _, plain := range []bool{false, true} {
		rec := seekRecording(t, plain)
		for _, at := range []struct{ first, from float64 }{{0, 0}, {0, 12.0015}, {0, 61.5}, {5, 100}, {20, 149}, {0, 179.99}, {0, 500}} {
			var skipped bytes.Buffer
			c, err := newCursor(bytes.NewReader(rec))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := newCursor(bytes.NewReader(rec))
			if err != nil {
				t.Fatal(err)
			}
			if at.first > 0 { // a window played before the seek
				if _, err := c.window(context.Background(), &skipped, at.first, 2); err != nil {
					t.Fatal(err)
				}
				readingWindow(t, ref, at.first, 2)
				skipped.Reset()
			}
			if _, err := c.window(context.Background(), &skipped, at.from, 3); err != nil {
				t.Fatal(err)
			}
			want := readingWindow(t, ref, at.from, 3)
			if skipped.String() != want {
				t.Fatalf("plain %v, window at %v after %v: %d bytes, want %d:\n%.600s\nwant:\n%.600s",
					plain, at.from, at.first, skipped.Len(), len(want), skipped.String(), want)
			}
			if at.from > 12.1 && strings.HasPrefix(want, `{"height":24,`) {
				t.Fatalf("window at %v after a resize has the first size: %.100s", at.from, want)
			}
		}
	}
}

// TestSeekPreludeBehindTyping: when the output before a seek's position
// lies behind more than a prelude's worth of lines without output (600
// KiB of typing), the prelude still goes back to it, from a new cursor
// and from one that played an earlier window: the window is the one cut
// by reading every event.
func TestSeekPreludeBehindTyping(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"version": 2, "width": 80, "height": 24}` + "\n")
	b.WriteString(`[0.5, "o", "OLD-SCREEN\r\n"]` + "\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "[%.3f, \"o\", \"newer %d\\r\\n\"]\n", 2+float64(i)/1000, i)
	}
	for i := range 20000 {
		fmt.Fprintf(&b, "[%.4f, \"i\", \"typed %20d\"]\n", 5+float64(i)/1000, i)
	}
	rec := b.String()
	for _, first := range []float64{-1, 0} {
		c, err := newCursor(strings.NewReader(rec))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if first >= 0 {
			if _, err := c.window(context.Background(), &out, first, 1); err != nil {
				t.Fatal(err)
			}
			out.Reset()
		}
		if _, err := c.window(context.Background(), &out, 30, 1); err != nil {
			t.Fatal(err)
		}
		ref, err := newCursor(strings.NewReader(rec))
		if err != nil {
			t.Fatal(err)
		}
		if want := readingWindow(t, ref, 30, 1); out.String() != want || !strings.Contains(want, "OLD-SCREEN") {
			t.Fatalf("after a window at %v: window at 30 s:\n%.300s\nwant:\n%.300s", first, out.String(), want)
		}
	}
}

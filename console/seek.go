package console

import (
	"context"
	"math"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// skipTo passes over the events before from with sessionlog's SkipToWith,
// which does not parse most of them (a seek into a 200 MB recording read
// every event before it), keeping what the window needs of them: the
// terminal size and the last PreludeBytes of output for the prelude. A
// cursor's peeked event (where its last window ended) is consumed first.
// A request already gone skips nothing (the window's loop then stops at
// its first check); a skip once started runs to its end (about 0.4 s for
// 200 MB).
func (c *cursor) skipTo(ctx context.Context, from float64) {
	if ctx.Err() != nil {
		return
	}
	if c.next != nil && c.next.Time < from {
		c.consume()
	}
	if c.next != nil || c.eof {
		return
	}
	// One microsecond short of from, rounded down: an event SkipTo passes
	// over is always one window's loop would have consumed (e.Time <
	// from); the loop consumes the rest.
	t := time.Duration(math.Floor(from*1e6))*time.Microsecond - time.Microsecond
	if t <= 0 {
		return
	}
	// An error is left where it is: Next returns it again, and peek
	// treats it as it always has (truncation is the end).
	sk, _ := c.rd.SkipToWith(t, sessionlog.SkipOptions{TailOutput: PreludeBytes})
	if sk.Events == 0 {
		return
	}
	if len(sk.Tail) < sk.Events {
		c.pre = prelude{} // the output before the tail is not next to it
	}
	if sk.Resize != nil {
		if cols, rows, ok := parseSize(sk.Resize.Data); ok {
			c.width, c.height = cols, rows
		}
	}
	for _, e := range sk.Tail {
		c.next = &e
		c.consume()
	}
	c.consumed, c.last = true, sk.Last
}

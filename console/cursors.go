package console

import (
	"context"
	"sync"
	"time"
)

// Bounds of the cursor cache: open recordings kept between a player's
// windows.
const (
	maxCursors = 32
	cursorIdle = 2 * time.Minute
)

// cursors keeps the cursor of each player's last window (by view ticket
// and session), so that playback and seeks forward continue where the
// last window ended. A cursor is used by one request at a time: take
// removes it, put returns it. Idle cursors are closed by a timer, so an
// abandoned page holds no open recording past cursorIdle. Each key has
// at most one window being cut: a new request (a seek) cancels the one
// before it, whose reading would be thrown away.
type cursors struct {
	idle time.Duration // 0: cursorIdle

	mu       sync.Mutex
	m        map[string]cachedCursor
	timer    *time.Timer
	inflight map[string]*inflight
}

type cachedCursor struct {
	c    *cursor
	used time.Time
}

type inflight struct{ cancel context.CancelFunc }

// begin starts the one window request of key: it cancels the request of
// key still running, if any, and returns the context the new one reads
// under and the function that ends it.
func (cs *cursors) begin(ctx context.Context, key string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	me := &inflight{cancel: cancel}
	cs.mu.Lock()
	if cs.inflight == nil {
		cs.inflight = map[string]*inflight{}
	}
	if old := cs.inflight[key]; old != nil {
		old.cancel()
	}
	cs.inflight[key] = me
	cs.mu.Unlock()
	return ctx, func() {
		cancel()
		cs.mu.Lock()
		if cs.inflight[key] == me {
			delete(cs.inflight, key)
		}
		cs.mu.Unlock()
	}
}

func (cs *cursors) idleAfter() time.Duration {
	if cs.idle > 0 {
		return cs.idle
	}
	return cursorIdle
}

// take returns the cached cursor of key if it can serve a window at
// from, or a new one from open.
func (cs *cursors) take(key string, from float64, open func() (*cursor, error)) (*cursor, error) {
	cs.mu.Lock()
	cc, ok := cs.m[key]
	if ok {
		delete(cs.m, key)
	}
	cs.mu.Unlock()
	if ok && cc.c.usableFor(from) {
		return cc.c, nil
	}
	if ok {
		cc.c.close()
	}
	return open()
}

// put keeps c for key's next window, or closes it; idle and surplus
// cursors are closed.
func (cs *cursors) put(key string, c *cursor, keep bool) {
	if !keep {
		c.close()
		return
	}
	now := time.Now()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]cachedCursor{}
	}
	cs.sweepLocked(now)
	for k, cc := range cs.m {
		if len(cs.m) < maxCursors {
			break
		}
		cc.c.close()
		delete(cs.m, k)
	}
	if old, ok := cs.m[key]; ok {
		old.c.close()
	}
	cs.m[key] = cachedCursor{c: c, used: now}
	if cs.timer == nil {
		cs.timer = time.AfterFunc(cs.idleAfter(), cs.sweep)
	}
}

// sweep closes the idle cursors, and runs again while any are kept.
func (cs *cursors) sweep() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.sweepLocked(time.Now())
	if len(cs.m) > 0 {
		cs.timer.Reset(cs.idleAfter())
		return
	}
	cs.timer = nil
}

func (cs *cursors) sweepLocked(now time.Time) {
	for k, cc := range cs.m {
		if now.Sub(cc.used) >= cs.idleAfter() {
			cc.c.close()
			delete(cs.m, k)
		}
	}
}

func (c *cursor) close() {
	if c.closer != nil {
		_ = c.closer.Close()
	}
}

package console

import (
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
// removes it, put returns it.
type cursors struct {
	mu sync.Mutex
	m  map[string]cachedCursor
}

type cachedCursor struct {
	c    *cursor
	used time.Time
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
	for k, cc := range cs.m {
		if now.Sub(cc.used) > cursorIdle || len(cs.m) >= maxCursors {
			cc.c.close()
			delete(cs.m, k)
		}
	}
	if old, ok := cs.m[key]; ok {
		old.c.close()
	}
	cs.m[key] = cachedCursor{c: c, used: now}
}

func (c *cursor) close() {
	if c.closer != nil {
		_ = c.closer.Close()
	}
}

package bastion

import (
	"context"
	"sync"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// indexFlushInterval is how often recorded lines are sent to IndexText.
const indexFlushInterval = time.Second

// indexMaxBatch flushes early when this many lines are waiting. The store
// indexes a large batch for much less per line (one document per session
// and kind per call), which matters most when text streams fast.
const indexMaxBatch = 2048

// indexMaxPending bounds the lines waiting for Backend.IndexText. A session
// that prints text faster than the store indexes it (cat of a large log)
// would otherwise grow the bastion's memory without bound. Past the bound
// the indexer takes no more lines (the recording keeps them all) and, once
// the recording is complete, reads them back from it (catchUp): the copy
// loop and the recording never wait for the index, and no line is left out.
const indexMaxPending = 16 << 10

// indexer batches recording lines for Backend.IndexText. It numbers the
// session's lines in the order OnLine gives them, which is the order a
// replay of the recording gives them again (catchUp), so that a position in
// that sequence says exactly which lines the index holds.
type indexer struct {
	srv  *Server
	id   string
	path string // the recording, read back when the indexer fell behind

	mu     sync.Mutex
	buf    []sessionlog.Line // lines seq-len(buf) to seq-1
	seq    int64             // lines taken so far
	behind bool              // the bound was reached or a flush failed: take no more lines
	// stopLines, once set, tells the recording to stop building lines when
	// the indexer falls behind: the catch-up builds them again from the
	// stored recording, so building them live would be work thrown away.
	stopLines func()

	kick  chan struct{}
	quit  chan struct{}
	flush chan struct{} // closed once the final flush is done
	done  chan struct{} // closed when the loop (and any catch-up) has ended

	// Owned by the loop goroutine.
	committed int64 // lines the index holds
	recorded  bool  // the catch-up position is in the store
	discarded bool  // the session never started: no flush, no catch-up
}

// newIndexer starts the indexer of session id, whose recording is at path.
// It registers with the server's catch-ups, so that Close waits for it and
// CatchUpIndex leaves its session alone.
func newIndexer(s *Server, id, path string) *indexer {
	ix := &indexer{srv: s, id: id, path: path, kick: make(chan struct{}, 1), quit: make(chan struct{}),
		flush: make(chan struct{}), done: make(chan struct{})}
	s.catchups.claim(id)
	go ix.loop()
	return ix
}

// add is the sessionlog OnLine callback; it never blocks on the Backend.
func (ix *indexer) add(l sessionlog.Line) {
	ix.mu.Lock()
	if ix.behind {
		ix.mu.Unlock()
		return
	}
	if len(ix.buf) >= indexMaxPending {
		// From here on the recording is the queue.
		ix.behind = true
		stop := ix.stopLines
		ix.mu.Unlock()
		if stop != nil {
			stop()
		}
		ix.wake()
		return
	}
	ix.buf = append(ix.buf, l)
	ix.seq++
	full := len(ix.buf) >= indexMaxBatch
	ix.mu.Unlock()
	if full {
		ix.wake()
	}
}

func (ix *indexer) wake() {
	select {
	case ix.kick <- struct{}{}:
	default:
	}
}

func (ix *indexer) loop() {
	defer ix.srv.catchups.release(ix.id)
	defer close(ix.done)
	t := time.NewTicker(indexFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ix.flushOnce()
		case <-ix.kick:
			ix.flushOnce()
		case <-ix.quit:
			if !ix.discarded {
				ix.flushOnce()
			}
			close(ix.flush)
			if !ix.discarded && ix.isBehind() {
				ix.catchUp()
			}
			return
		}
	}
}

func (ix *indexer) isBehind() bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.behind
}

// fallBehind stops taking lines: the catch-up reads them from the recording.
func (ix *indexer) fallBehind() {
	ix.mu.Lock()
	ix.behind = true
	stop := ix.stopLines
	ix.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// setStopLines gives the indexer its recording's Writer.StopLines; an
// indexer that is already behind calls it at once.
func (ix *indexer) setStopLines(stop func()) {
	ix.mu.Lock()
	ix.stopLines = stop
	behind := ix.behind
	ix.mu.Unlock()
	if behind {
		stop()
	}
}

// flushOnce sends the waiting lines to the Backend. Behind, it also stores
// the catch-up position (the lines the index holds), in the same
// transaction, so that a restart resumes the catch-up where the index ends.
// A failed call loses nothing: the indexer falls behind, and the catch-up
// reads the lines again from the recording.
func (ix *indexer) flushOnce() {
	ix.mu.Lock()
	lines, first, behind := ix.buf, ix.seq-int64(len(ix.buf)), ix.behind
	ix.buf = nil
	ix.mu.Unlock()
	if first != ix.committed {
		lines = nil // after a failed flush: the catch-up covers these too
	}
	ctx, cancel := backendCtx(context.Background())
	defer cancel()
	b := ix.srv.cfg.Backend
	if !behind {
		if len(lines) == 0 {
			return
		}
		if err := b.IndexText(ctx, ix.id, lines); err != nil {
			ix.srv.log.Warn("index recording text; reading it back from the recording later", "session", ix.id, "lines", len(lines), "err", err)
			ix.fallBehind()
			return
		}
		ix.committed += int64(len(lines))
		return
	}
	if ix.recorded && len(lines) == 0 {
		return
	}
	next := ix.committed + int64(len(lines))
	if err := b.IndexPending(ctx, ix.id, lines, next, false); err != nil {
		ix.srv.log.Warn("index recording text (behind)", "session", ix.id, "lines", len(lines), "err", err)
		return
	}
	if !ix.recorded {
		ix.srv.log.Info("search index behind the session; the rest is indexed from the recording", "session", ix.id, "from_line", next)
	}
	ix.committed, ix.recorded = next, true
}

// Backoff of a catch-up whose store fails: a store down for the rest of the
// session (so that neither the final flush nor the catch-up could store the
// position) must not lose the lines from the committed position on.
const (
	catchUpRetryFirst = time.Second
	catchUpRetryMax   = time.Minute
)

// catchUp indexes the session's lines from the committed position on, read
// back from its complete recording. A failure is retried with backoff from
// where the store's position is, until it succeeds or the Server closes.
func (ix *indexer) catchUp() {
	ctx := ix.srv.catchups.ctx
	wait := catchUpRetryFirst
	for attempt := 1; ; attempt++ {
		reached, err := ix.srv.catchUp(ctx, ix.id, ix.path, ix.committed)
		if reached > ix.committed {
			ix.committed, ix.recorded = reached, true
		}
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			if ix.recorded {
				ix.srv.log.Warn("search index catch-up stopped by shutdown; it resumes at the next start from the stored position", "session", ix.id, "from_line", ix.committed, "err", err)
			} else {
				ix.srv.log.Error("search index catch-up stopped by shutdown with no position stored: the session's lines from this one on are not indexed", "session", ix.id, "from_line", ix.committed, "err", err)
			}
			return
		}
		// Logged at the 1st, 2nd, 4th, 8th... failure.
		if attempt&(attempt-1) == 0 {
			ix.srv.log.Warn("search index catch-up failed; will retry", "session", ix.id, "from_line", ix.committed, "position_stored", ix.recorded, "attempt", attempt, "retry_in", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, catchUpRetryMax)
	}
}

// stop flushes what is left and ends the loop. It returns after the final
// flush; a catch-up goes on in the background (Server.Close stops it).
func (ix *indexer) stop() {
	close(ix.quit)
	<-ix.flush
}

// discard ends the loop without flushing.
func (ix *indexer) discard() {
	ix.discarded = true
	close(ix.quit)
	<-ix.done
}

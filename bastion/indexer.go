package bastion

import (
	"context"
	"sync"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// indexFlushInterval is how often recorded lines are sent to IndexText.
const indexFlushInterval = time.Second

// indexMaxBatch flushes early when this many lines are waiting.
const indexMaxBatch = 512

// indexMaxPending bounds the lines waiting for Backend.IndexText. A session
// that prints text faster than the store indexes it (cat of a large log)
// would otherwise grow the bastion's memory without bound; lines past the
// bound are left out of the search index (and the count logged), never
// out of the recording.
const indexMaxPending = 64 << 10

// indexer batches recording lines for Backend.IndexText.
type indexer struct {
	srv     *Server
	id      string
	mu      sync.Mutex
	buf     []sessionlog.Line
	skipped int // lines left out since the last flush: the index was behind
	kick    chan struct{}
	quit    chan bool // true: flush before exit
	done    chan struct{}
}

func newIndexer(s *Server, id string) *indexer {
	ix := &indexer{srv: s, id: id, kick: make(chan struct{}, 1), quit: make(chan bool), done: make(chan struct{})}
	go ix.loop()
	return ix
}

// add is the sessionlog OnLine callback; it never blocks on the Backend.
func (ix *indexer) add(l sessionlog.Line) {
	ix.mu.Lock()
	if len(ix.buf) >= indexMaxPending {
		ix.skipped++
		ix.mu.Unlock()
		return
	}
	ix.buf = append(ix.buf, l)
	full := len(ix.buf) >= indexMaxBatch
	ix.mu.Unlock()
	if full {
		select {
		case ix.kick <- struct{}{}:
		default:
		}
	}
}

func (ix *indexer) loop() {
	defer close(ix.done)
	t := time.NewTicker(indexFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ix.flush()
		case <-ix.kick:
			ix.flush()
		case final := <-ix.quit:
			if final {
				ix.flush()
			}
			return
		}
	}
}

func (ix *indexer) flush() {
	ix.mu.Lock()
	lines, skipped := ix.buf, ix.skipped
	ix.buf, ix.skipped = nil, 0
	ix.mu.Unlock()
	if skipped > 0 {
		ix.srv.log.Warn("search index behind; lines left out of it (the recording has them)", "session", ix.id, "lines", skipped)
	}
	if len(lines) == 0 {
		return
	}
	ctx, cancel := backendCtx(context.Background())
	defer cancel()
	if err := ix.srv.cfg.Backend.IndexText(ctx, ix.id, lines); err != nil {
		ix.srv.log.Warn("index recording text", "session", ix.id, "lines", len(lines), "err", err)
	}
}

// stop flushes what is left and ends the loop.
func (ix *indexer) stop() {
	ix.quit <- true
	<-ix.done
}

// discard ends the loop without flushing.
func (ix *indexer) discard() {
	ix.quit <- false
	<-ix.done
}

package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// Catch-up reads a recording back through a sessionlog.Writer writing to
// io.Discard, whose OnLine gives the same lines in the same order as the
// session's own Writer gave them, then indexes those the index lacks.
const (
	// catchUpBatch is how many lines one IndexPending call of a catch-up
	// stores: large batches are much cheaper per line for the store.
	catchUpBatch = 4096
	// catchUpQueue bounds what the replaying Writer queues, and so how many
	// lines can wait in memory beyond a batch.
	catchUpQueue = 256 << 10
)

// catchUps tracks the indexers and catch-ups of a Server: the sessions
// being indexed in this process, and a context Close cancels.
type catchUps struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	live map[string]int // session ID -> indexers and catch-ups running
}

func newCatchUps() *catchUps {
	ctx, cancel := context.WithCancel(context.Background())
	return &catchUps{ctx: ctx, cancel: cancel, live: map[string]int{}}
}

// claim counts a goroutine indexing session id.
func (c *catchUps) claim(id string) {
	c.mu.Lock()
	c.live[id]++
	c.mu.Unlock()
	c.wg.Add(1)
}

// tryClaim claims id unless something in this process indexes it already.
func (c *catchUps) tryClaim(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live[id] > 0 || c.ctx.Err() != nil {
		return false
	}
	c.live[id]++
	c.wg.Add(1)
	return true
}

func (c *catchUps) release(id string) {
	c.mu.Lock()
	if c.live[id]--; c.live[id] <= 0 {
		delete(c.live, id)
	}
	c.mu.Unlock()
	c.wg.Done()
}

// stop cancels the catch-ups and waits for every indexer to end. A
// cancelled catch-up keeps its stored position, from which CatchUpIndex
// resumes it (jitd does at its next start).
func (c *catchUps) stop() {
	c.cancel()
	c.wg.Wait()
}

// CatchUpIndex indexes the text lines of the session's recording at path
// from line number next on (0-based, in recording order), in batches that
// each move the session's stored catch-up position on (Backend.IndexPending)
// and, at the end of the recording, clear it. jitd calls it at start for
// the positions the store holds: sessions whose index fell behind and that
// ended, or whose jitd stopped, before their catch-up finished. It returns
// nil at once for a session that this Server is indexing itself. A torn
// last line (a crash) ends the recording; a malformed one is an error, and
// the position stays.
func (s *Server) CatchUpIndex(ctx context.Context, sessionID, path string, next int64) error {
	if !s.catchups.tryClaim(sessionID) {
		return nil
	}
	defer s.catchups.release(sessionID)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.catchups.ctx, cancel)
	defer stop()
	_, err := s.catchUp(ctx, sessionID, path, next)
	return err
}

// lineSink collects the replaying Writer's lines; OnLine must not block,
// since the Writer calls it while holding its EncoderPool slot.
type lineSink struct {
	mu    sync.Mutex
	lines []sessionlog.Line
}

func (ls *lineSink) add(l sessionlog.Line) {
	ls.mu.Lock()
	ls.lines = append(ls.lines, l)
	ls.mu.Unlock()
}

func (ls *lineSink) take(min int) []sessionlog.Line {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.lines) < min {
		return nil
	}
	l := ls.lines
	ls.lines = nil
	return l
}

// replayIndex numbers the lines of a replay and stores those from next on.
type replayIndex struct {
	s      *Server
	id     string
	next   int64 // the first line the index lacks
	seen   int64 // lines numbered so far
	stored int64 // the position the store holds now (next, until a call succeeds)
}

// store indexes lines (the replay's next ones), leaving out those the index
// holds; done ends the catch-up.
func (ri *replayIndex) store(ctx context.Context, lines []sessionlog.Line, done bool) error {
	skip := max(0, min(int64(len(lines)), ri.next-ri.seen))
	ri.seen += int64(len(lines))
	lines = lines[skip:]
	if len(lines) == 0 && !done {
		return nil
	}
	bctx, cancel := backendCtx(ctx)
	defer cancel()
	if err := ri.s.cfg.Backend.IndexPending(bctx, ri.id, lines, max(ri.seen, ri.next), done); err != nil {
		return fmt.Errorf("index lines %d to %d: %w", ri.seen-int64(len(lines)), ri.seen, err)
	}
	ri.stored = max(ri.seen, ri.next)
	return nil
}

// catchUp replays the recording at path and indexes its lines from next on.
// It returns the position the store holds at the end: next, or further
// when some batches were stored before an error.
func (s *Server) catchUp(ctx context.Context, id, path string, next int64) (int64, error) {
	open := s.cfg.OpenRecording
	if open == nil {
		open = func(p string) (io.ReadCloser, error) { return os.Open(p) }
	}
	f, err := open(path)
	if err != nil {
		return next, fmt.Errorf("catch up index of session %s: %w", id, err)
	}
	defer f.Close()
	rd, err := sessionlog.NewReader(f)
	if err != nil {
		return next, fmt.Errorf("catch up index of session %s: %w", id, err)
	}
	h := rd.Header()
	var sink lineSink
	var at time.Duration // the offset of the event being replayed
	base := time.Unix(0, 0)
	w, err := sessionlog.NewWriter(io.Discard, sessionlog.Header{Width: h.Width, Height: h.Height},
		sessionlog.WriterOptions{
			Clock:  func() time.Time { return base.Add(at) },
			OnLine: sink.add, Pool: s.encoders, QueueSize: catchUpQueue, SyncInterval: time.Hour,
		})
	if err != nil {
		return next, fmt.Errorf("catch up index of session %s: %w", id, err)
	}
	ri := &replayIndex{s: s, id: id, next: next, stored: next}
	err = replayEvents(ctx, rd, w, &at, func() error { return ri.store(ctx, sink.take(catchUpBatch), false) })
	if _, cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = ri.store(ctx, sink.take(0), true)
	}
	if err != nil {
		return ri.stored, fmt.Errorf("catch up index of session %s from line %d: %w", id, next, err)
	}
	return ri.stored, nil
}

// replayEvents feeds the recording's text events and markers to w, setting
// *at to each event's offset first, and calls each after every event.
func replayEvents(ctx context.Context, rd *sessionlog.Reader, w *sessionlog.Writer, at *time.Duration, each func() error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev, err := rd.Next()
		if err == io.EOF || errors.Is(err, sessionlog.ErrTruncated) {
			return nil
		}
		if err != nil {
			return err
		}
		*at = time.Duration(math.Round(ev.Time*1e6)) * time.Microsecond
		switch ev.Code {
		case sessionlog.CodeOutput:
			err = w.Output([]byte(ev.Data))
		case sessionlog.CodeInput:
			err = w.Input([]byte(ev.Data))
		case sessionlog.CodeMarker:
			err = w.Marker(ev.Data)
		}
		if err != nil {
			return err
		}
		if err := each(); err != nil {
			return err
		}
	}
}

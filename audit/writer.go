package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// States of a queued request; the writer and the waiting caller race to move
// it out of queued, which decides whether a cancelled caller's fn may run.
const (
	stateQueued int32 = iota
	stateRunning
	stateAbandoned
)

// request is one Do call waiting for the writer.
type request struct {
	ctx   context.Context
	fn    func(tx *Tx) error
	state atomic.Int32
	err   error         // set by the writer before done is closed
	done  chan struct{} // closed by the writer once err is final
}

// Tx is the handle a Do callback writes through. It is valid only while the
// callback runs and must not be shared with other goroutines.
type Tx struct {
	tx     *txConn
	engine engine
	head   head
	done   bool
}

var errTxDone = errors.New("audit: transaction used after its Do callback returned")

func (t *Tx) check() error {
	if t.done {
		return errTxDone
	}
	return nil
}

// exec runs one write. On PostgreSQL a failed statement aborts the whole
// transaction, while callers here may take a unique violation as an answer
// and go on writing (AddApproval's ErrConflict, then the refusal's event),
// as SQLite allows; so each write there runs in a savepoint of its own,
// and a failure undoes only that statement, as on SQLite.
func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	if t.engine != enginePostgres {
		return t.tx.Exec(query, args...)
	}
	if _, err := t.tx.Exec("SAVEPOINT stmt"); err != nil {
		return nil, fmt.Errorf("audit: savepoint: %w", err)
	}
	res, err := t.tx.Exec(query, args...)
	if err != nil {
		if _, rerr := t.tx.Exec("ROLLBACK TO SAVEPOINT stmt"); rerr != nil {
			return nil, fmt.Errorf("%w (and roll back to savepoint: %w)", err, rerr)
		}
	}
	if _, rerr := t.tx.Exec("RELEASE SAVEPOINT stmt"); rerr != nil && err == nil {
		return nil, fmt.Errorf("audit: release savepoint: %w", rerr)
	}
	return res, err
}

// Do runs fn on the writer goroutine inside a transaction shared with other
// queued callers (each in its own SAVEPOINT when there are several) and returns once that transaction
// is committed to disk. If fn returns an error its writes are rolled back and
// Do returns that error; other callers in the batch are unaffected. If the
// commit fails, every caller in the batch gets the commit error.
//
// fn runs serialized with every other write, so it may read through tx and
// then write based on what it read (check-then-write is atomic). fn must not
// block and must not call Do (that deadlocks): the whole store waits for it.
// A panic in fn is recovered and returned as that caller's error.
//
// If ctx is done before fn starts, fn never runs and Do returns ctx.Err().
// Once fn has started, Do waits for the commit regardless of ctx, so a nil
// error always means the writes are durable. After Close, Do returns
// ErrClosed.
func (s *Store) Do(ctx context.Context, fn func(tx *Tx) error) error {
	if fn == nil {
		return errors.New("audit: do: fn is nil")
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan struct{})}
	if err := s.enqueue(ctx, r); err != nil {
		return err
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return ctx.Err()
		}
		<-r.done
		return r.err
	}
}

// Append appends e to the chain in a transaction of its own, as Do with one
// Tx.Append: a nil error means the event is durable.
func (s *Store) Append(ctx context.Context, e Event) error {
	err := s.Do(ctx, func(tx *Tx) error {
		_, err := tx.Append(e)
		return err
	})
	if err != nil {
		return fmt.Errorf("record %s: %w", e.Type, err)
	}
	return nil
}

func (s *Store) enqueue(ctx context.Context, r *request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.queue <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer owns the write connection: it takes every queued request (up to
// maxBatch), runs them in one transaction and answers them after COMMIT.
// It exits when the queue is closed and drained.
func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*request, 0, maxBatch)
	wait := time.NewTimer(batchWait)
	wait.Stop()
	prev := 0 // callers in the previous batch
	for r := range s.queue {
		batch = append(batch[:0], r)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if prev > 1 && len(batch) < maxBatch {
			// Under load (the previous batch was shared) more callers are
			// on their way; a short wait lets them share this commit, whose
			// cost hardly depends on how many it carries. A caller that
			// finds the store idle is never delayed.
			wait.Reset(batchWait)
		linger:
			for len(batch) < maxBatch {
				select {
				case r, ok := <-s.queue:
					if !ok {
						break linger
					}
					batch = append(batch, r)
				case <-wait.C:
					break linger
				}
			}
			wait.Stop()
		}
		prev = len(batch)
		s.runBatch(batch)
		clear(batch)
	}
}

func (s *Store) runBatch(batch []*request) {
	live := claim(batch)
	if len(live) == 0 {
		return
	}
	err := s.commitBatch(live)
	for _, r := range live {
		if r.err == nil {
			r.err = err
		}
		close(r.done)
	}
}

// claim takes every request of batch for running: one that its caller
// already abandoned is dropped, one whose context is done is answered, and
// the rest, returned, can no longer be abandoned.
func claim(batch []*request) []*request {
	live := batch[:0:0]
	for _, r := range batch {
		if !r.state.CompareAndSwap(stateQueued, stateRunning) {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	return live
}

// commitBatch runs the callbacks of live in one transaction and commits it.
// A callback's own error is left in its request; the error returned is the
// answer of every caller without one. When the whole batch fails, the
// callers' own errors are cleared, since none of their writes stand.
func (s *Store) commitBatch(live []*request) error {
	tx, err := s.write.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("audit: begin transaction: %w", err)
	}
	if err := s.lockChain(tx); err != nil {
		tx.Rollback()
		return err
	}
	// Another process (jitd user add beside a running jitd, another
	// replica) may have appended since this one last wrote; the chain
	// continues from what the database holds now, read under the write
	// lock that BEGIN IMMEDIATE (SQLite) or lockChain (PostgreSQL) took.
	head, err := loadHeadTx(tx)
	if err != nil {
		tx.Rollback()
		return err
	}
	// A lone caller needs no savepoint: if it fails, the whole transaction
	// is rolled back, which undoes exactly its writes.
	alone := len(live) == 1
	conn := &txConn{tx: tx, engine: s.engine}
	if broken := runCallbacks(conn, head, live, alone); broken != nil {
		tx.Rollback()
		clearErrs(live)
		return broken
	}
	if alone && live[0].err != nil {
		if err := tx.Rollback(); err != nil {
			live[0].err = fmt.Errorf("%w (and roll back: %w)", live[0].err, err)
		}
		return nil
	}
	if err := conn.flush(len(conn.pending)); err != nil {
		tx.Rollback()
		clearErrs(live)
		return err
	}
	if err := tx.Commit(); err != nil {
		clearErrs(live)
		return fmt.Errorf("audit: commit: %w", err)
	}
	s.commits.Add(1)
	s.hub.notify() // this process's feeds read at once (feed.go)
	return nil
}

// runCallbacks runs each callback of live in turn, the chain head passing
// from one that succeeded to the next, and returns an error that leaves tx
// unusable.
func runCallbacks(conn *txConn, head head, live []*request, alone bool) error {
	for i, r := range live {
		t := &Tx{tx: conn, engine: conn.engine, head: head}
		conn.startCall(i+1, !alone)
		ferr := callSafely(t, r.fn)
		broken := conn.endCall(ferr != nil)
		t.done = true
		if broken != nil {
			return broken
		}
		if ferr != nil {
			r.err = ferr
			continue
		}
		head = t.head
	}
	return nil
}

func clearErrs(live []*request) {
	for _, r := range live {
		r.err = nil
	}
}

// callSafely turns a panic in fn into that caller's error, so one bad
// callback cannot take the writer (and every other caller) down with it.
func callSafely(t *Tx, fn func(*Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("audit: do callback panicked: %v", p)
		}
	}()
	return fn(t)
}

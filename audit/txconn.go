package audit

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// txConn is what the statements of a batch's callbacks go through: the
// batch's transaction, with two savings of round trips while the chain lock
// is held (on PostgreSQL each statement is one):
//
//   - A callback's savepoint is taken only before its first statement, so
//     a callback that only appends events (Tx.Append, held back as below)
//     needs none: if it fails, nothing of it reached the database.
//   - On PostgreSQL the chain's appends are held back and inserted together,
//     several rows per INSERT, before the next statement of any callback
//     and before COMMIT. Append computes the hash in Go and makes the row
//     one that PostgreSQL takes whatever the caller gave (valid UTF-8,
//     escaped for NUL, indexed fields within MaxIndexedText), so the
//     insert can fail only on a fork (seq and prev_hash are unique), a
//     timeout or a broken connection, each of which fails the whole batch,
//     as such a failure did before (it left the transaction unusable).
//
// Statements reach the database in the order the callbacks made them, so
// a statement that reads events sees every event appended before it.
type txConn struct {
	tx      *sql.Tx
	engine  engine
	pending []pendingEvent // appended on PostgreSQL, not yet inserted
	call    int            // the callback running now, from 1
	lazy    bool           // the running callback gets a savepoint before its first statement
	inCall  bool           // and has it
	broken  error          // a failure that leaves the transaction unusable
}

// pendingEvent is the row of an event not yet inserted and the callback it
// belongs to.
type pendingEvent struct {
	call int
	row  []any
}

// eventInsertColumns are the columns of an event's row, in pendingEvent.row's order.
const eventInsertColumns = `seq, time, type, code, actor, user, host, login, request_id,
		session_id, serial, client_addr, message, data, prev_hash, hash`

// eventRowsPerInsert bounds one INSERT of held-back events (16 parameters
// each; PostgreSQL takes at most 65535).
const eventRowsPerInsert = 128

// before runs ahead of every statement: the running callback's savepoint
// if it has none yet (after the events of earlier callbacks, which it must
// not undo), then the held-back events.
func (c *txConn) before() error {
	if c.broken != nil {
		return c.broken
	}
	if c.lazy && !c.inCall {
		n := 0
		for n < len(c.pending) && c.pending[n].call < c.call {
			n++
		}
		if err := c.flush(n); err != nil {
			return err
		}
		if _, err := c.tx.Exec("SAVEPOINT call"); err != nil {
			c.broken = fmt.Errorf("audit: savepoint: %w", err)
			return c.broken
		}
		c.inCall = true
	}
	return c.flush(len(c.pending))
}

// flush inserts the first n held-back events.
func (c *txConn) flush(n int) error {
	for n > 0 {
		k := min(n, eventRowsPerInsert)
		rows := c.pending[:k]
		q := "INSERT INTO events (" + eventInsertColumns + ") VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", k), ", ")
		args := make([]any, 0, k*16)
		for _, p := range rows {
			args = append(args, p.row...)
		}
		if _, err := c.tx.Exec(q, args...); err != nil {
			c.broken = fmt.Errorf("audit: insert %d events from seq %v: %w", k, rows[0].row[0], classify(err))
			return c.broken
		}
		c.pending = c.pending[k:]
		n -= k
	}
	return nil
}

// appendRow inserts an event's row, or on PostgreSQL holds it back.
func (c *txConn) appendRow(row []any) error {
	if c.engine == enginePostgres {
		if c.broken != nil {
			return c.broken
		}
		c.pending = append(c.pending, pendingEvent{call: c.call, row: row})
		return nil
	}
	_, err := c.Exec("INSERT INTO events ("+eventInsertColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row...)
	return err
}

// startCall begins callback number n; lazy asks for a savepoint of its
// own before its first statement (a lone callback needs none).
func (c *txConn) startCall(n int, lazy bool) {
	c.call, c.lazy, c.inCall = n, lazy, false
}

// endCall ends the running callback: its savepoint released, or, when it
// failed, its writes undone (rolled back to its savepoint, its held-back
// events dropped).
func (c *txConn) endCall(failed bool) error {
	if failed {
		for len(c.pending) > 0 && c.pending[len(c.pending)-1].call == c.call {
			c.pending = c.pending[:len(c.pending)-1]
		}
	}
	if !c.inCall || c.broken != nil {
		return c.broken
	}
	c.inCall = false
	if failed {
		if _, err := c.tx.Exec("ROLLBACK TO call"); err != nil {
			c.broken = fmt.Errorf("audit: rollback to savepoint: %w", err)
			return c.broken
		}
	}
	if _, err := c.tx.Exec("RELEASE call"); err != nil {
		c.broken = fmt.Errorf("audit: release savepoint: %w", err)
	}
	return c.broken
}

// Exec runs a write after what before needs.
func (c *txConn) Exec(q string, args ...any) (sql.Result, error) {
	if err := c.before(); err != nil {
		return nil, err
	}
	return c.tx.Exec(q, args...)
}

// Query runs a read after what before needs.
func (c *txConn) Query(q string, args ...any) (*sql.Rows, error) {
	if err := c.before(); err != nil {
		return nil, err
	}
	return c.tx.Query(q, args...)
}

// QueryRow runs a read after what before needs. A failure of before
// leaves the transaction unusable, so the read fails too (and the batch
// with it, through broken).
func (c *txConn) QueryRow(q string, args ...any) *sql.Row {
	_ = c.before()
	return c.tx.QueryRow(q, args...)
}

// QueryContext is Query with a context, for readers shared with the read
// pool (querier).
func (c *txConn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := c.before(); err != nil {
		return nil, err
	}
	return c.tx.QueryContext(ctx, q, args...)
}

// Package audit is the one embedded store of jitssh: a SQLite database (WAL,
// synchronous=FULL) holding the hash-chained event log, certificates,
// requests, approvals, tokens, enrolled users, sessions and a full-text index
// of session text.
//
// All writes go through [Store.Do], which hands the caller's function to a
// single writer goroutine. The writer groups whatever callers are queued into
// one transaction, gives each its own SAVEPOINT (so one caller's failure does
// not fail the others), commits once and only then answers every caller: when
// Do returns nil the caller's writes are durably on disk. Reads use a separate
// pool of read-only connections and never wait for the writer.
//
// The package also owns the tamper evidence: signed checkpoints of the chain
// head ([Store.SignCheckpoint]) and one [Store.Verify] of the chain, the
// checkpoints and every finished session's row and recording file.
//
// The package knows nothing of SSH connections; it uses x/crypto/ssh only
// for the format of checkpoint signatures and takes the signing key from its
// caller, never from a file. Recording files are read through an fs.FS.
// Every other type is plain data. Times are stored as INTEGER Unix
// nanoseconds (the zero time as 0) and returned in UTC. uint64 serials are
// stored bit-for-bit as SQLite's signed 64-bit integers.
package audit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// Errors reported by the store; check them with errors.Is, they are wrapped
// with the name of the table and the key that caused them.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("audit: store closed")
	// ErrNotFound means no row has the given key.
	ErrNotFound = errors.New("audit: not found")
	// ErrConflict means a unique key already exists or a state precondition
	// (such as UpdateRequest's fromStates) did not hold.
	ErrConflict = errors.New("audit: conflict")
)

// maxBatch bounds how many queued callers share one transaction.
const maxBatch = 256

// batchWait is how long the writer waits for more callers to join a batch
// when the previous batch was shared by several: the most any caller is
// delayed for the sake of group commit.
const batchWait = 200 * time.Microsecond

// stmtCacheSize is how many prepared statements each connection keeps for
// reuse (the driver's _stmt_cache_size). The store's statements are a fixed
// set of query strings, so the hot ones (the issuance inserts, the token
// lookup) are compiled once per connection instead of on every call.
const stmtCacheSize = 64

// busyTimeoutMS is how long a connection waits for a lock held by another
// process before giving up with SQLITE_BUSY.
const busyTimeoutMS = 10000

// Store is an open audit database. It is safe for concurrent use.
type Store struct {
	path   string // the file, or the PostgreSQL URL without its password
	engine engine
	write  *sql.DB // exactly one connection, used only by the writer goroutine
	read   *sql.DB // read-only pool

	mu     sync.RWMutex // guards closed and sends on queue
	closed bool
	queue  chan *request
	done   chan struct{} // closed when the writer goroutine has exited

	commits atomic.Int64 // transactions the writer committed, for benchmarks

	hub   commitHub       // wakes this process's feeds after each commit (feed.go)
	pgcfg *pgx.ConnConfig // PostgreSQL: the URL's settings, for the feed's LISTEN connection
}

// Open opens (creating if needed, with mode 0600) the database at path,
// applies any pending schema migrations in one transaction, checks that the
// event chain can be read and starts the writer goroutine. The file's directory must
// be writable: SQLite keeps its -wal and -shm files beside the database.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open audit store: path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open audit store %q: %w", path, err)
	}
	if err := precheck(abs); err != nil {
		return nil, fmt.Errorf("open audit store %q: %w", path, err)
	}
	s := &Store{path: abs, engine: engineSQLite, queue: make(chan *request, maxBatch), done: make(chan struct{})}
	if err := s.open(); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open audit store %q: %w", path, err)
	}
	go s.writer()
	return s, nil
}

// connector opens connections with a driver of the store's own, so that
// per-connection settings (the write connection's ConnectHook) need no
// driver registered in a package-level registry.
type connector struct {
	dsn    string
	driver *sqlite3.SQLiteDriver
}

// Connect implements driver.Connector.
func (c connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }

// Driver implements driver.Connector.
func (c connector) Driver() driver.Driver { return c.driver }

// precheck turns the usual misconfigurations into clear errors before SQLite
// reports a bare "unable to open database file".
func precheck(abs string) error {
	dir := filepath.Dir(abs)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("directory %q is not a directory", dir)
	}
	if st, err := os.Stat(abs); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%q is not a regular file", abs)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("database file must be writable: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The WAL and shared-memory files are created beside the database.
	probe, err := os.CreateTemp(dir, ".jitssh-probe-*")
	if err != nil {
		return fmt.Errorf("directory %q must be writable for the WAL files: %w", dir, err)
	}
	name := probe.Name()
	probe.Close()
	return os.Remove(name)
}

func dsn(abs string, params string) string {
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + params
}

func (s *Store) open() error {
	var err error
	s.write = sql.OpenDB(connector{
		dsn: dsn(s.path, fmt.Sprintf(
			"_journal_mode=WAL&_synchronous=FULL&_foreign_keys=on&_busy_timeout=%d&_txlock=immediate&_stmt_cache_size=%d",
			busyTimeoutMS, stmtCacheSize)),
		driver: &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			// Each caller in a batch runs in a SAVEPOINT, whose sub-journal
			// (the pages' contents before the caller changed them, needed
			// only to roll that caller back) is a temporary file unless
			// kept in memory. It is never part of what makes a commit
			// durable: that is the WAL, synced at COMMIT.
			_, err := c.Exec("PRAGMA temp_store = MEMORY", nil)
			return err
		}},
	})
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxLifetime(0)
	s.write.SetConnMaxIdleTime(0)
	ctx := context.Background()
	var mode string
	if err := s.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("write connection: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want \"wal\"", mode)
	}
	if err := migrate(ctx, s.write); err != nil {
		return err
	}
	if err := catchUpFTS(ctx, s.write); err != nil {
		return err
	}
	if _, err = loadHead(ctx, s.write); err != nil {
		return err
	}
	s.read, err = sql.Open("sqlite3", dsn(s.path, fmt.Sprintf(
		"mode=ro&_query_only=on&_foreign_keys=on&_busy_timeout=%d&_stmt_cache_size=%d", busyTimeoutMS, stmtCacheSize)))
	if err != nil {
		return fmt.Errorf("read connections: %w", err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("read connections: %w", err)
	}
	return nil
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	if s.write != nil {
		errs = append(errs, s.write.Close())
	}
	return errors.Join(errs...)
}

// Close stops accepting writes, lets the writer finish every call already
// queued, then closes the database. Calls made after Close return ErrClosed;
// a second Close returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.done
	if err := s.closeDBs(); err != nil {
		return fmt.Errorf("close audit store %q: %w", s.path, err)
	}
	return nil
}

// reader returns the read pool, or ErrClosed once Close has begun.
func (s *Store) reader() (*sql.DB, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return s.read, nil
}

// codec accumulates the first conversion error while building a row, so the
// insert methods read as one list of columns.
type codec struct{ err error }

// StorableTime reports whether the store can hold and compare t: the zero
// time (none), or a time in the years 1678 to 2261 (int64 nanoseconds span
// 1677-09-21 to 2262-04-11; the store stays well inside). Callers that take
// times from outside (query parameters) refuse the others as bad input.
func StorableTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	y := t.Year()
	return y >= 1678 && y <= 2261
}

func (c *codec) nanos(field string, t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if !StorableTime(t) {
		if c.err == nil {
			c.err = fmt.Errorf("%s %s is outside the storable range", field, t.Format(time.RFC3339))
		}
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func toSerial(u uint64) int64   { return int64(u) }
func fromSerial(i int64) uint64 { return uint64(i) }

func clampLimit(limit int) string {
	if limit <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", limit)
}

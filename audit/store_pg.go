package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL store keeps the SQLite store's design: one writer goroutine
// per process batching every queued caller into one transaction (group
// commit), a pool of read connections beside it. What changes is that other
// processes (replicas) write the same chain: each batch's transaction first
// takes a transaction-scoped advisory lock on the chain (chainLockKey), then
// reads the head, so appends from every writer are serialised in the
// database; the events table's primary key (seq) and unique prev_hash refuse
// a fork even if a writer skipped the lock.
//
// The package's SQL is SQLite's; pgConn rebinds each query's placeholders
// (dialect.go) and escapes NUL in text (pgtext.go). database/sql over pgx's
// stdlib keeps every method of the package one code path for both engines.
// What the chain lock's hold time costs is round trips (docs/BENCHMARKS.md
// §10): txConn holds the chain's appends back and inserts them together,
// and takes a callback's savepoint only when it runs a statement.
// Connections run with timeouts and keepalives (pgsession.go).

// Advisory lock keys of the PostgreSQL store: "jitssh" in ASCII and a number.
const (
	chainLockKey   int64 = 0x6a6974737368_01
	migrateLockKey int64 = 0x6a6974737368_02
)

// defaultReadConns is how many read connections a PostgreSQL store keeps
// open at most when Options leaves it zero.
const defaultReadConns = 8

// Options tunes OpenURL; the zero value is the default.
type Options struct {
	// ReadConns bounds the PostgreSQL read pool (0: 8). Unused for SQLite,
	// whose read connections are cheap file handles.
	ReadConns int
}

// IsPostgresURL reports whether target names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// OpenURL opens the store target names: a postgres:// or postgresql:// URL
// (libpq's URL form, parsed by pgx: host, port, user, password, database,
// sslmode and the other parameters), or else the path of a SQLite file as
// Open takes it. Pending migrations are applied first; on PostgreSQL by one
// process at a time, under an advisory lock the others wait for.
func OpenURL(ctx context.Context, target string, opts Options) (*Store, error) {
	if !IsPostgresURL(target) {
		return Open(target)
	}
	shown := RedactURL(target)
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		// pgx's message quotes the URL only without its password.
		return nil, fmt.Errorf("open audit store %s: %w", shown, err)
	}
	s := &Store{path: shown, engine: enginePostgres, queue: make(chan *request, maxBatch), done: make(chan struct{}), pgcfg: cfg}
	if err := s.openPG(ctx, cfg, opts); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("open audit store %s: %w", shown, err)
	}
	go s.writer()
	return s, nil
}

// RedactURL is target without its password, for messages and Location.
func RedactURL(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	// url.Redacted masks only the userinfo password; libpq also takes
	// password and sslpassword as query parameters.
	q := u.Query()
	for k := range q {
		if lk := strings.ToLower(k); lk == "password" || lk == "sslpassword" {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

// Location is where the store is: the SQLite file's absolute path, or the
// PostgreSQL URL without its password.
func (s *Store) Location() string { return s.path }

// Engine is "sqlite" or "postgres".
func (s *Store) Engine() string { return s.engine.String() }

func (s *Store) openPG(ctx context.Context, cfg *pgx.ConnConfig, opts Options) error {
	rb := &rebinder{cache: make(map[string]string)}
	wcfg := cfg.Copy()
	// The audit promise is durability: a commit is answered only once the
	// server has flushed it, whatever the server's default.
	wcfg.RuntimeParams["synchronous_commit"] = "on"
	// The chain's head is read after the advisory lock is taken: under a
	// snapshot isolation default (ALTER DATABASE, or the URL) the snapshot
	// would be taken by the lock's own statement, the head read stale and
	// every batch that waited would conflict. Read committed, always.
	wcfg.RuntimeParams["default_transaction_isolation"] = "read committed"
	wcfg.RuntimeParams["application_name"] = "jitd audit writer"
	if err := harden(wcfg, true); err != nil {
		return err
	}
	s.write = sql.OpenDB(pgConnector{inner: stdlib.GetConnector(*wcfg), rb: rb})
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	rcfg := cfg.Copy()
	rcfg.RuntimeParams["default_transaction_read_only"] = "on"
	rcfg.RuntimeParams["application_name"] = "jitd audit reader"
	if err := harden(rcfg, false); err != nil {
		return err
	}
	s.read = sql.OpenDB(pgConnector{inner: stdlib.GetConnector(*rcfg), rb: rb})
	n := opts.ReadConns
	if n <= 0 {
		n = defaultReadConns
	}
	s.read.SetMaxOpenConns(n)
	s.read.SetMaxIdleConns(n)
	if err := migratePG(ctx, s.write); err != nil {
		return err
	}
	if _, err := loadHead(ctx, s.write); err != nil {
		return err
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("read connections: %w", err)
	}
	return nil
}

// snapshot is the options of a read transaction whose statements all see
// one snapshot: SQLite's read transactions always do; PostgreSQL's default
// (read committed) takes a new one per statement.
func (s *Store) snapshot() *sql.TxOptions {
	if s.engine != enginePostgres {
		return nil
	}
	return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
}

// lockChain makes tx the only writer of the chain until it ends. SQLite's
// BEGIN IMMEDIATE already did that for the whole file.
func (s *Store) lockChain(tx *sql.Tx) error {
	if s.engine != enginePostgres {
		return nil
	}
	if _, err := tx.Exec("SELECT pg_advisory_xact_lock(?)", chainLockKey); err != nil {
		return chainLockError(err)
	}
	return nil
}

// chainLockError says why taking the chain lock failed; running out of
// lock_timeout means another writer (a replica) holds the chain lock and
// does not let go, which the caller sees as the store being unavailable.
func chainLockError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
		return fmt.Errorf("audit: the chain lock (pg_advisory_xact_lock %#x) is held by another writer past lock_timeout: %w", chainLockKey, err)
	}
	return fmt.Errorf("audit: lock the event chain: %w", err)
}

// migratePG applies the pending steps of pgMigrations and the new
// schema_version in one transaction (PostgreSQL's DDL is transactional),
// holding an advisory lock so that replicas starting together apply them
// once: the others wait, then find nothing to do.
func migratePG(ctx context.Context, db *sql.DB) error {
	steps := pgMigrations()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback()
	// A migration may take long on a big database, and the replicas that
	// start meanwhile should wait for it, not give up: no timeouts here.
	if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0"); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", migrateLockKey); err != nil {
		return fmt.Errorf("migrate schema: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		one     BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
		version BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate schema: create schema_version: %w", err)
	}
	var version int
	switch err := tx.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&version); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version) VALUES (0)"); err != nil {
			return fmt.Errorf("migrate schema: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate schema: read schema_version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("migrate schema: database schema version %d is newer than this binary's %d", version, len(steps))
	}
	if version == len(steps) {
		return tx.Commit()
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migrate schema: step %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE schema_version SET version = ?", len(steps)); err != nil {
		return fmt.Errorf("migrate schema: set schema_version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: commit: %w", err)
	}
	return nil
}

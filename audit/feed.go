package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The change feed is the chain itself: every change that other replicas
// must see (a revocation, an enrolment, a policy reload) is already a
// chained event, durable and in seq order. A Feed tails the events table
// after a cursor and hands the events of the types it was asked for to its
// caller. Nothing can be lost: the events stay, and seq order is commit
// order on both engines (SQLite has one writer per file; on PostgreSQL a
// batch holds the chain's advisory lock from before it reads the head
// until it commits, so seq N+1 cannot commit before seq N is visible). A
// wake-up only makes the next read sooner: this process's own commits
// wake the feed at once, PostgreSQL's LISTEN/NOTIFY wakes it for every
// other replica's commit (feed_pg.go), and a poll reads anyway, so a lost
// notification or a dead LISTEN connection costs latency, never an event.

// Defaults of FeedConfig.
const (
	// DefaultFeedPage is how many events one call of a Feed's function gets
	// at most.
	DefaultFeedPage = 256
	// DefaultFeedPoll is how often a Feed reads without being woken when
	// nothing else wakes it for other processes' commits: SQLite (jitd user
	// add beside jitd), or PostgreSQL while the LISTEN connection is down.
	DefaultFeedPoll = 2 * time.Second
	// DefaultFeedBackstop is how often a Feed on PostgreSQL reads while its
	// LISTEN connection is up: a connection that died silently between two
	// of its own checks still costs at most this much delay.
	DefaultFeedBackstop = 10 * time.Second
)

// feedRetry is how long a Feed waits after a failed read or a failed call
// of its function before it tries again (from the same cursor).
const feedRetry = time.Second

// FeedConfig configures Store.NewFeed.
type FeedConfig struct {
	// Types are the event types delivered (exact names); required.
	Types []string
	// After is the cursor to start from: events with Seq > After are
	// delivered. Store.HeadSeq taken when the process starts is the usual
	// value (what was committed before is already in the state it read).
	After int64
	// Page bounds the events of one call of the function (0: DefaultFeedPage).
	Page int
	// Poll is the read interval without wake-ups (0: DefaultFeedPoll);
	// Backstop the one on PostgreSQL while LISTEN is up (0:
	// DefaultFeedBackstop).
	Poll, Backstop time.Duration
	// OnListen, if set, is told each time the PostgreSQL LISTEN connection
	// comes up (err nil) or goes down (with why), for the caller's log.
	OnListen func(up bool, err error)
	// OnRead, if set, is told after each read of the chain: err is the
	// failed read's (or page function's) error and failures how many
	// reads in a row failed, this one included; after a success err is
	// nil and failures how many failed before it. It runs on Run's
	// goroutine and must not block.
	OnRead func(err error, failures int)
}

// FeedHealth is what a Feed reports about itself, for metrics.
type FeedHealth struct {
	// Cursor is the seq up to which every event of the feed's types has
	// been handed to its function (and the function returned nil).
	Cursor int64
	// LastRead is when the feed last read the chain up to its head; zero
	// before the first read.
	LastRead time.Time
	// Listening is whether the PostgreSQL LISTEN connection is up (always
	// false on SQLite, where in-process commits and the poll wake it).
	Listening bool
	// Postgres is whether the store is on PostgreSQL (Listening means
	// something).
	Postgres bool
	// Err is the last read's or function's error, nil once one succeeded.
	Err error
	// Failures is how many reads in a row failed (0 after a success);
	// ReadErrors how many failed since Run started.
	Failures   int
	ReadErrors int64
	// Healthy is whether the feed is delivering, judged by progress: its
	// last read succeeded, within twice the interval it reads at (Poll on
	// SQLite, Backstop on PostgreSQL), and on PostgreSQL LISTEN is up.
	// LISTEN alone says nothing about reads: they go through the reader
	// pool, which can fail (no connection to be had) while it stays up.
	Healthy bool
}

// Feed tails the chain for events of some types. Run it once.
type Feed struct {
	store *Store
	cfg   FeedConfig

	cursor    atomic.Int64
	listening atomic.Bool
	mu        sync.Mutex
	lastRead  time.Time
	lastErr   error
	failures  int
	readErrs  int64
}

// NewFeed returns a Feed of the events of cfg.Types after cfg.After; it
// reads nothing until Run.
func (s *Store) NewFeed(cfg FeedConfig) (*Feed, error) {
	if len(cfg.Types) == 0 {
		return nil, errors.New("audit: new feed: no event types")
	}
	for _, t := range cfg.Types {
		if t == "" {
			return nil, errors.New("audit: new feed: an event type is empty")
		}
	}
	if cfg.After < 0 {
		return nil, fmt.Errorf("audit: new feed: cursor %d is negative", cfg.After)
	}
	if cfg.Page <= 0 {
		cfg.Page = DefaultFeedPage
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultFeedPoll
	}
	if cfg.Backstop <= 0 {
		cfg.Backstop = DefaultFeedBackstop
	}
	f := &Feed{store: s, cfg: cfg}
	f.cursor.Store(cfg.After)
	return f, nil
}

// Health reports the feed's cursor, last read, errors and LISTEN
// connection, and whether it is healthy by them now.
func (f *Feed) Health() FeedHealth {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := FeedHealth{Cursor: f.cursor.Load(), LastRead: f.lastRead, Listening: f.listening.Load(),
		Postgres: f.store.engine == enginePostgres, Err: f.lastErr, Failures: f.failures, ReadErrors: f.readErrs}
	window := 2 * f.cfg.Poll
	if h.Postgres {
		window = 2 * f.cfg.Backstop
	}
	h.Healthy = h.Err == nil && !h.LastRead.IsZero() && time.Since(h.LastRead) <= window && (h.Listening || !h.Postgres)
	return h
}

// Run delivers, until ctx is done, every committed event of the feed's
// types after its cursor, in seq order, at least once: fn gets them in
// pages of at most Page events, and the cursor moves past a page only once
// fn returned nil (otherwise the page is offered again after a second). A
// page is read soon after a commit of this process, at once after a
// PostgreSQL notification, and every Poll (Backstop while LISTEN is up)
// regardless. Run returns ctx's error; fn is never called concurrently.
func (f *Feed) Run(ctx context.Context, fn func(context.Context, []Event) error) error {
	wake := make(chan struct{}, 1)
	unsubscribe := f.store.hub.subscribe(wake)
	defer unsubscribe()
	var wg sync.WaitGroup
	defer wg.Wait()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	if f.store.engine == enginePostgres {
		wg.Go(func() { f.listen(lctx, wake) })
	}
	timer := time.NewTimer(0) // the first read at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer.C:
		}
		next := f.cfg.Poll
		if f.listening.Load() {
			next = f.cfg.Backstop
		}
		err := f.catchUp(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.mu.Lock()
		f.lastErr = err
		failures := f.failures
		if err == nil {
			f.lastRead, f.failures = time.Now(), 0
		} else {
			f.failures++
			f.readErrs++
			failures = f.failures
		}
		f.mu.Unlock()
		if f.cfg.OnRead != nil {
			f.cfg.OnRead(err, failures)
		}
		if err != nil {
			next = feedRetry
		}
		timer.Reset(next)
	}
}

// catchUp reads from the cursor to the head as it is now, page by page.
func (f *Feed) catchUp(ctx context.Context, fn func(context.Context, []Event) error) error {
	head, err := f.store.HeadSeq(ctx)
	if err != nil {
		return err
	}
	for {
		cursor := f.cursor.Load()
		if cursor >= head {
			return nil
		}
		page, err := f.store.eventsOfTypes(ctx, cursor, head, f.cfg.Types, f.cfg.Page)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			f.cursor.Store(head)
			return nil
		}
		if err := fn(ctx, page); err != nil {
			return fmt.Errorf("feed after seq %d: %w", cursor, err)
		}
		last := page[len(page)-1].Seq
		if len(page) < f.cfg.Page {
			last = head // nothing more of our types up to head
		}
		f.cursor.Store(last)
	}
}

// HeadSeq returns the seq of the last committed event (0 for an empty
// chain), as a reader sees it now.
func (s *Store) HeadSeq(ctx context.Context) (int64, error) {
	db, err := s.reader()
	if err != nil {
		return 0, err
	}
	var seq int64
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM events").Scan(&seq); err != nil {
		return 0, fmt.Errorf("read chain head: %w", err)
	}
	return seq, nil
}

// eventsOfTypes returns at most limit events with after < seq <= upto whose
// type is one of types, in seq order.
func (s *Store) eventsOfTypes(ctx context.Context, after, upto int64, types []string, limit int) ([]Event, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	// The walk is along seq (the primary key) from the cursor; on SQLite
	// the unary + keeps the planner off the type index, which would visit
	// every event of those types ever written.
	col := "+type"
	if s.engine == enginePostgres {
		col = "type"
	}
	args := make([]any, 0, len(types)+3)
	args = append(args, after, upto)
	for _, t := range types {
		args = append(args, t)
	}
	args = append(args, limit)
	q := "SELECT " + eventColumns + " FROM events WHERE seq > ? AND seq <= ? AND " + col +
		" IN (?" + strings.Repeat(", ?", len(types)-1) + ") ORDER BY seq LIMIT ?"
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read events after seq %d: %w", after, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("read events after seq %d: %w", after, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events after seq %d: %w", after, err)
	}
	return out, nil
}

// commitHub wakes this process's feeds after each commit of its writer.
type commitHub struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// subscribe adds ch (buffered) to what notify wakes; the function returned
// removes it.
func (h *commitHub) subscribe(ch chan struct{}) func() {
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan struct{}]struct{}{}
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// notify wakes every subscriber without waiting: one pending wake-up is
// as good as many.
func (h *commitHub) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

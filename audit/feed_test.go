package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// feedWait bounds every wait for an event to arrive; arrivals are much
// faster (a notification or a commit wakes the feed at once).
const feedWait = 20 * time.Second

// never is a poll interval no test waits for: an event that arrives came
// by a wake-up.
const never = time.Hour

// collector gathers what a feed delivers.
type collector struct {
	mu    sync.Mutex
	evs   []Event
	pages []int
	fail  int // calls to fail before accepting
}

func (c *collector) fn(_ context.Context, page []Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("refused for the test")
	}
	c.evs = append(c.evs, page...)
	c.pages = append(c.pages, len(page))
	return nil
}

func (c *collector) seqs() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int64, 0, len(c.evs))
	for _, e := range c.evs {
		out = append(out, e.Seq)
	}
	return out
}

func (c *collector) waitFor(t *testing.T, want []int64) {
	t.Helper()
	testkit.WaitFor(t, feedWait, fmt.Sprintf("feed delivers seqs %v", want), func() bool {
		return slices.Equal(c.seqs(), want)
	})
}

// runFeed runs a feed of s until the test ends.
func runFeed(t *testing.T, s *Store, cfg FeedConfig) (*Feed, *collector) {
	t.Helper()
	f, err := s.NewFeed(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, c.fn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
	return f, c
}

// appendAll appends one event per type and returns their seqs.
func appendAll(t *testing.T, s *Store, types ...string) []int64 {
	t.Helper()
	var seqs []int64
	for _, typ := range types {
		mustDo(t, s, func(tx *Tx) error {
			e, err := tx.Append(Event{Type: typ, Serial: 7})
			seqs = append(seqs, e.Seq)
			return err
		})
	}
	return seqs
}

func openSecond(t *testing.T, target string) *Store {
	t.Helper()
	s, err := OpenURL(context.Background(), target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestFeedDeliversItsTypesInOrder: from the cursor on, only the asked
// types, in seq order, in pages of at most Page, woken by this process's
// own commits (the poll is too slow to matter).
func TestFeedDeliversItsTypesInOrder(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		before := appendAll(t, s, "cert.revoked")
		head, err := s.HeadSeq(context.Background())
		if err != nil || head != before[0] {
			t.Fatalf("HeadSeq = %d, %v; want %d", head, err, before[0])
		}
		_, c := runFeed(t, s, FeedConfig{Types: []string{"cert.revoked", "host.joined"}, After: head, Page: 2, Poll: never, Backstop: never})
		seqs := appendAll(t, s, "cert.revoked", "login", "host.joined", "cert.revoked", "cert.revoked", "request.created", "cert.revoked")
		want := []int64{seqs[0], seqs[2], seqs[3], seqs[4], seqs[6]}
		c.waitFor(t, want)
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, n := range c.pages {
			if n > 2 {
				t.Errorf("a page of %d events, want at most 2", n)
			}
		}
	})
}

// TestFeedRetriesRefusedPages: a page fn refused is offered again (at
// least once), never skipped.
func TestFeedRetriesRefusedPages(t *testing.T) {
	s, _ := openTest(t)
	f, err := s.NewFeed(FeedConfig{Types: []string{"cert.revoked"}, Poll: never})
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{fail: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	seqs := appendAll(t, s, "cert.revoked", "cert.revoked")
	go func() { done <- f.Run(ctx, c.fn) }()
	defer func() { cancel(); <-done }()
	c.waitFor(t, seqs)
	if h := f.Health(); h.Cursor != seqs[1] || h.Err != nil || h.LastRead.IsZero() {
		t.Errorf("Health = %+v, want cursor %d, no error, a last read", h, seqs[1])
	}
}

// TestFeedSeesAnotherStoresWrites: two stores on one database stand for two
// replicas (PostgreSQL: only the notification wakes the feed, its polls
// are an hour apart) or for jitd and jitd user add on one SQLite file
// (there the poll is what sees the other process's commit).
func TestFeedSeesAnotherStoresWrites(t *testing.T) {
	tests := []struct {
		name string
		open func(testing.TB) (*Store, string)
		poll time.Duration
		// params are added to the second store's URL: libpq's keepalive
		// names must be taken out of what the LISTEN connection sends
		// the server, as for the pools, or it never listens.
		params string
	}{
		{"postgres-notify", openPG, never, ""},
		{"postgres-notify-keepalive-params", openPG, never, "keepalives_idle=7&keepalives_interval=2"},
		{"sqlite-poll", openTest, 50 * time.Millisecond, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, target := tt.open(t)
			second := target
			if tt.params != "" {
				second += map[bool]string{true: "&", false: "?"}[strings.Contains(target, "?")] + tt.params
			}
			b := openSecond(t, second)
			f, c := runFeed(t, b, FeedConfig{Types: []string{"cert.revoked"}, Poll: tt.poll, Backstop: never})
			if a.engine == enginePostgres {
				testkit.WaitFor(t, feedWait, "LISTEN connection up", func() bool { return f.Health().Listening })
			}
			seqs := appendAll(t, a, "cert.revoked")
			c.waitFor(t, seqs)
			seqs = append(seqs, appendAll(t, a, "cert.revoked", "cert.revoked")...)
			c.waitFor(t, seqs)
		})
	}
}

// TestFeedSurvivesAKilledListenConnection: the LISTEN connection killed by
// the server (pg_terminate_backend) while another replica appends loses
// nothing: the feed reconnects and reads from its cursor.
func TestFeedSurvivesAKilledListenConnection(t *testing.T) {
	a, target := openPG(t)
	b := openSecond(t, target)
	var mu sync.Mutex
	var ups, downs int
	f, c := runFeed(t, b, FeedConfig{Types: []string{"cert.revoked"}, Poll: never, Backstop: never,
		OnListen: func(up bool, _ error) {
			mu.Lock()
			defer mu.Unlock()
			if up {
				ups++
			} else {
				downs++
			}
		}})
	testkit.WaitFor(t, feedWait, "LISTEN connection up", func() bool { return f.Health().Listening })
	db := rawDB(t, target)
	var killed int
	if err := db.QueryRow(`SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'jitd audit feed' AND datname = current_database()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate the feed's connection: %d killed, %v", killed, err)
	}
	// Appended while the connection is down or coming back: the
	// notification is lost, the events are not.
	seqs := appendAll(t, a, "cert.revoked", "cert.revoked", "cert.revoked")
	c.waitFor(t, seqs)
	testkit.WaitFor(t, feedWait, "LISTEN connection up again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ups >= 2 && downs >= 1 && f.Health().Listening
	})
	seqs = append(seqs, appendAll(t, a, "cert.revoked")...)
	c.waitFor(t, seqs)
}

func TestNewFeedRefusesBadConfig(t *testing.T) {
	s, _ := openTest(t)
	for _, cfg := range []FeedConfig{{}, {Types: []string{""}}, {Types: []string{"x"}, After: -1}} {
		if _, err := s.NewFeed(cfg); err == nil {
			t.Errorf("NewFeed(%+v) = nil error", cfg)
		}
	}
}

// TestFeedUnhealthyWhileItCannotRead: the daemon lets the bastion relax
// every live connection's revocation lookups (5s to 30s) while the feed
// is healthy, so health must follow reads, not the LISTEN connection
// alone. A feed whose reads fail (here its reader pool is closed; in
// production e.g. max_connections reached) while LISTEN stays up is
// unhealthy, counts its failures and tells OnRead; a healthy one before
// it was healthy.
func TestFeedUnhealthyWhileItCannotRead(t *testing.T) {
	a, target := openPG(t)
	b := openSecond(t, target)
	var mu sync.Mutex
	var failures []int
	onRead := func(err error, n int) {
		if err != nil {
			mu.Lock()
			failures = append(failures, n)
			mu.Unlock()
		}
	}
	f, _ := runFeed(t, b, FeedConfig{Types: []string{"cert.revoked"}, OnRead: onRead})
	testkit.WaitFor(t, feedWait, "healthy feed", func() bool { h := f.Health(); return h.Listening && h.Healthy })
	b.read.Close() // every read of the feed now fails
	appendAll(t, a, "cert.revoked")
	testkit.WaitFor(t, feedWait, "two failed reads", func() bool { return f.Health().Failures >= 2 })
	h := f.Health()
	if h.Healthy || h.Err == nil || h.ReadErrors < 2 {
		t.Fatalf("feed that cannot read: healthy %v, err %v, read errors %d (listening %v)", h.Healthy, h.Err, h.ReadErrors, h.Listening)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) < 2 || failures[0] != 1 || failures[1] != 2 {
		t.Fatalf("OnRead failures in a row = %v, want 1, 2, ...", failures)
	}
}

// TestFeedHealthNeedsRecentRead: a feed whose last good read is older
// than twice its interval is unhealthy even with no error (a read that
// hangs fails nothing); before its first read it is unhealthy too.
func TestFeedHealthNeedsRecentRead(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "jitssh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f, err := s.NewFeed(FeedConfig{Types: []string{"cert.revoked"}, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if f.Health().Healthy {
		t.Fatal("healthy before any read")
	}
	f.mu.Lock()
	f.lastRead = time.Now()
	f.mu.Unlock()
	if !f.Health().Healthy {
		t.Fatal("unhealthy right after a good read on SQLite")
	}
	f.mu.Lock()
	f.lastRead = time.Now().Add(-201 * time.Millisecond)
	f.mu.Unlock()
	if f.Health().Healthy {
		t.Fatal("healthy with its last read older than twice the poll")
	}
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockWriter occupies the writer goroutine until the returned release func
// is called, so that later Do calls queue up into one batch.
func blockWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	started, gate := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Do(context.Background(), func(*Tx) error {
			close(started)
			<-gate
			return nil
		})
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(gate)
			wg.Wait()
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n calls are queued for the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued after 10s, want %d", len(s.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDoBatchIsolatesCallerErrors(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		errOwn := errors.New("caller's own failure")
		tests := []struct {
			name    string
			fn      func(tx *Tx) error
			wantErr string // empty: success
			stored  bool   // its event must be in the log
		}{
			{name: "ok first", fn: appendMsg("ok first", nil), stored: true},
			{name: "append then fail", fn: appendMsg("append then fail", errOwn), wantErr: errOwn.Error()},
			{name: "panic", fn: func(tx *Tx) error {
				if _, err := tx.Append(Event{Type: "test", Message: "panic"}); err != nil {
					return err
				}
				panic("boom")
			}, wantErr: "panicked: boom"},
			{name: "invalid event", fn: func(tx *Tx) error {
				_, err := tx.Append(Event{Message: "no type"})
				return err
			}, wantErr: "type is empty"},
			// An append is visible to the caller's next statement, and undone
			// with the caller's other writes; the earlier callers' appends
			// (held back on PostgreSQL) are not undone with it.
			{name: "append, read back, fail", fn: appendReadBack("append, read back, fail", errOwn), wantErr: errOwn.Error()},
			{name: "append, read back", fn: appendReadBack("append, read back", nil), stored: true},
			{name: "ok last", fn: appendMsg("ok last", nil), stored: true},
		}
		release := blockWriter(t, s)
		errs := make([]error, len(tests))
		var wg sync.WaitGroup
		for i, tt := range tests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Do(context.Background(), tt.fn)
			}()
			waitQueued(t, s, i+1) // keep the order of the table
		}
		release()
		wg.Wait()
		evs, err := s.Events(context.Background(), EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		stored := map[string]bool{}
		for _, e := range evs {
			stored[e.Message] = true
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.wantErr == "" && errs[i] != nil {
					t.Errorf("Do = %v, want nil", errs[i])
				}
				if tt.wantErr != "" && (errs[i] == nil || !strings.Contains(errs[i].Error(), tt.wantErr)) {
					t.Errorf("Do = %v, want error containing %q", errs[i], tt.wantErr)
				}
				if stored[tt.name] != tt.stored {
					t.Errorf("event %q stored = %v, want %v", tt.name, stored[tt.name], tt.stored)
				}
			})
		}
		if errs[1] != nil && !errors.Is(errs[1], errOwn) {
			t.Errorf("failing caller's error %v does not wrap its own error", errs[1])
		}
		assertVerified(t, s, 3)
	})
}

// appendReadBack appends an event with message msg, checks that a read in
// the same callback sees it, and returns ret.
func appendReadBack(msg string, ret error) func(tx *Tx) error {
	return func(tx *Tx) error {
		if _, err := tx.Append(Event{Type: "test", Message: msg}); err != nil {
			return err
		}
		var n int
		if err := tx.tx.QueryRow("SELECT COUNT(*) FROM events WHERE message = ?", msg).Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("the callback's own event is not visible to it: %d rows", n)
		}
		return ret
	}
}

// A caller alone in its batch runs without a savepoint; its failure must
// still undo exactly its own writes and leave the chain continuing from the
// last committed event.
func TestDoLoneCallerFailureRollsBack(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		errOwn := errors.New("caller's own failure")
		tests := []struct {
			name    string
			fn      func(tx *Tx) error
			wantErr string
		}{
			{name: "error after writes", fn: func(tx *Tx) error {
				if err := tx.InsertRequest(Request{ID: "r1", User: "alice", State: StatePending}); err != nil {
					return err
				}
				return appendMsg("error after writes", errOwn)(tx)
			}, wantErr: errOwn.Error()},
			{name: "panic after writes", fn: func(tx *Tx) error {
				if err := tx.InsertRequest(Request{ID: "r1", User: "alice", State: StatePending}); err != nil {
					return err
				}
				if _, err := tx.Append(Event{Type: "test", Message: "panic after writes"}); err != nil {
					return err
				}
				panic("boom")
			}, wantErr: "panicked: boom"},
			{name: "constraint error after append", fn: func(tx *Tx) error {
				if _, err := tx.Append(Event{Type: "test", Message: "constraint error after append"}); err != nil {
					return err
				}
				return tx.InsertCertificate(Certificate{Serial: 1, Kind: "user"}) // serial 1 exists
			}, wantErr: "conflict"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				mustDo(t, s, func(tx *Tx) error {
					if err := tx.InsertCertificate(Certificate{Serial: 1, Kind: "user"}); err != nil {
						return err
					}
					return appendMsg("before", nil)(tx)
				})
				err := s.Do(context.Background(), tt.fn)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Do = %v, want error containing %q", err, tt.wantErr)
				}
				if _, err := s.Request(context.Background(), "r1"); !errors.Is(err, ErrNotFound) {
					t.Errorf("request of the failed call: err = %v, want ErrNotFound", err)
				}
				var got Event
				mustDo(t, s, func(tx *Tx) error {
					var err error
					got, err = tx.Append(Event{Type: "test", Message: "after"})
					return err
				})
				if got.Seq != 2 {
					t.Errorf("seq after failed call = %d, want 2", got.Seq)
				}
				assertVerified(t, s, 2)
			})
		}
	})
}

// appendMsg returns a Do callback appending an event whose message is msg
// and then returning ret.
func appendMsg(msg string, ret error) func(tx *Tx) error {
	return func(tx *Tx) error {
		if _, err := tx.Append(Event{Type: "test", Message: msg}); err != nil {
			return err
		}
		return ret
	}
}

func TestDoCommitFailureFailsWholeBatch(t *testing.T) {
	s, _ := openTest(t)
	mustDo(t, s, appendMsg("before", nil))
	release := blockWriter(t, s)
	fns := []func(tx *Tx) error{
		appendMsg("innocent", nil),
		func(tx *Tx) error {
			// A deferred foreign key violation is only detected at COMMIT.
			if _, err := tx.tx.Exec("PRAGMA defer_foreign_keys = ON"); err != nil {
				return err
			}
			_, err := tx.tx.Exec("INSERT INTO approvals (request_id, approver, decision) VALUES ('missing', 'bob', 'approve')")
			return err
		},
		appendMsg("innocent too", nil),
	}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Do(context.Background(), fn)
		}()
		waitQueued(t, s, i+1)
	}
	release()
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "commit") {
			t.Errorf("caller %d: Do = %v, want the commit error", i, err)
		}
	}
	// The head was restored: the next append continues the committed chain.
	var got Event
	mustDo(t, s, func(tx *Tx) error {
		var err error
		got, err = tx.Append(Event{Type: "test", Message: "after"})
		return err
	})
	if got.Seq != 2 {
		t.Errorf("seq after failed commit = %d, want 2", got.Seq)
	}
	assertVerified(t, s, 2)
}

func TestDoContext(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		tests := []struct {
			name    string
			cancel  string // "before": before Do; "queued": while queued; "running": while fn runs
			wantErr error
			wantRan bool
		}{
			{name: "cancelled before Do", cancel: "before", wantErr: context.Canceled},
			{name: "cancelled while queued", cancel: "queued", wantErr: context.Canceled},
			{name: "cancelled while fn runs", cancel: "running", wantRan: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				ran := false
				fn := func(tx *Tx) error {
					ran = true
					if tt.cancel == "running" {
						cancel()
					}
					_, err := tx.Append(Event{Type: "test"})
					return err
				}
				var err error
				switch tt.cancel {
				case "before":
					cancel()
					err = s.Do(ctx, fn)
				case "queued":
					release := blockWriter(t, s)
					done := make(chan error)
					go func() { done <- s.Do(ctx, fn) }()
					waitQueued(t, s, 1)
					cancel()
					err = <-done // returns without waiting for the writer
					release()
				case "running":
					err = s.Do(ctx, fn)
				}
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
					t.Errorf("Do = %v, want %v", err, tt.wantErr)
				}
				mustDo(t, s, func(*Tx) error { return nil }) // the writer has seen everything
				if ran != tt.wantRan {
					t.Errorf("fn ran = %v, want %v", ran, tt.wantRan)
				}
				evs, err := s.Events(context.Background(), EventFilter{})
				if err != nil {
					t.Fatal(err)
				}
				if got := len(evs) == 1; got != tt.wantRan {
					t.Errorf("event stored = %v, want %v", got, tt.wantRan)
				}
			})
		}
	})
}

func TestCloseDrainsQueueAndRefusesNewCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jitssh.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s)
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.Do(context.Background(), appendMsg(fmt.Sprint(i), nil)) }()
	}
	waitQueued(t, s, n)
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	// Close must not finish while queued calls are pending.
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v before the queue drained", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("queued Do = %v, want nil", err)
		}
	}
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{name: "Do", call: func() error { return s.Do(ctx, func(*Tx) error { return nil }) }},
		{name: "Events", call: func() error { _, err := s.Events(ctx, EventFilter{}); return err }},
		{name: "Verify", call: func() error { _, err := s.Verify(ctx); return err }},
		{name: "Request", call: func() error { _, err := s.Request(ctx, "r"); return err }},
		{name: "Search", call: func() error { _, err := s.Search(ctx, SearchQuery{Text: "x"}); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", c.name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertVerified(t, s2, n)
}

func TestTxUnusableAfterCallback(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		var kept *Tx
		mustDo(t, s, func(tx *Tx) error { kept = tx; return nil })
		if _, err := kept.Append(Event{Type: "late"}); !errors.Is(err, errTxDone) {
			t.Errorf("Append on a finished Tx = %v, want %v", err, errTxDone)
		}
	})
}

// TestGroupCommitConcurrent has 100 goroutines append through separate Do
// calls, every fifth of which fails after appending.
func TestGroupCommitConcurrent(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		const workers, perWorker = 100, 20
		errFail := errors.New("planned failure")
		var wg sync.WaitGroup
		unexpected := make(chan error, workers*perWorker)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					fail := i%5 == 4
					err := s.Do(context.Background(), func(tx *Tx) error {
						if _, err := tx.Append(Event{Type: "test", Actor: fmt.Sprint(w), Message: fmt.Sprint(i)}); err != nil {
							return err
						}
						if fail {
							return errFail
						}
						return nil
					})
					if fail != errors.Is(err, errFail) || (!fail && err != nil) {
						unexpected <- fmt.Errorf("worker %d call %d (fail=%v): Do = %v", w, i, fail, err)
					}
				}
			}()
		}
		wg.Wait()
		close(unexpected)
		for err := range unexpected {
			t.Error(err)
		}
		const want = workers * perWorker * 4 / 5
		assertVerified(t, s, want)
		evs, err := s.Events(context.Background(), EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		perActor := map[string][]string{}
		for _, e := range evs {
			perActor[e.Actor] = append(perActor[e.Actor], e.Message)
		}
		for w := range workers {
			var wantMsgs []string
			for i := range perWorker {
				if i%5 != 4 {
					wantMsgs = append(wantMsgs, fmt.Sprint(i))
				}
			}
			if got := perActor[fmt.Sprint(w)]; fmt.Sprint(got) != fmt.Sprint(wantMsgs) {
				t.Errorf("worker %d events = %v, want %v (in order)", w, got, wantMsgs)
			}
		}
	})
}

func TestUpdateRequestRaceExactlyOneWins(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		mustDo(t, s, func(tx *Tx) error {
			return tx.InsertRequest(Request{ID: "r1", User: "alice", State: StatePending, CreatedAt: at(0)})
		})
		const n = 100
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Do(context.Background(), func(tx *Tx) error {
					r, err := tx.Request("r1")
					if err != nil {
						return err
					}
					r.State, r.DecidedBy, r.DecidedAt = StateApproved, fmt.Sprint("approver", i), at(time.Minute)
					return tx.UpdateRequest(r, StatePending)
				})
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("callers %d and %d both approved", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrConflict):
				t.Errorf("caller %d: %v, want ErrConflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no caller approved the request")
		}
		r, err := s.Request(context.Background(), "r1")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("approver", winner); r.State != StateApproved || r.DecidedBy != want {
			t.Errorf("stored request state %q decided by %q, want approved by %q", r.State, r.DecidedBy, want)
		}
	})
}

// A user name past PostgreSQL's btree limit (2704 bytes an entry), which
// an unauthenticated SSH client can pick, is stored bounded by Append and
// so fails neither its own append nor the other callers of its batch (on
// PostgreSQL they share one INSERT at COMMIT).
func TestLongUserBoundedNotFailingBatch(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		var b []rune
		x := uint32(12345)
		for len(b) < 4000 {
			x = x*1664525 + 1013904223
			b = append(b, rune(0x4e00+x%20000))
		}
		long := string(b)
		release := blockWriter(t, s)
		errs := make([]error, 2)
		done := make(chan int, 2)
		go func() {
			errs[0] = s.Append(context.Background(), Event{Type: "cert.issued", User: "alice"})
			done <- 0
		}()
		waitQueued(t, s, 1)
		go func() {
			errs[1] = s.Append(context.Background(), Event{Type: "session.rejected", User: long})
			done <- 1
		}()
		waitQueued(t, s, 2)
		release()
		<-done
		<-done
		if errs[0] != nil {
			t.Errorf("an honest caller batched with the long name: %v", errs[0])
		}
		if errs[1] != nil {
			t.Errorf("the refusal with a %d-byte name is not recorded: %.300v", len(long), errs[1])
		}
		evs, err := s.Events(context.Background(), EventFilter{Type: "session.rejected"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("Events = %d, %v", len(evs), err)
		}
		if u := evs[0].User; len(u) > MaxIndexedText+3 || !strings.HasPrefix(long, strings.TrimSuffix(u, "...")) || len(u) < MaxIndexedText-3 {
			t.Errorf("stored user is %d bytes, want the first ~%d of the name", len(u), MaxIndexedText)
		}
	})
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestLeaseContract checks the lease contract on both engines: the holder
// renews, others are refused until expiry by the database's clock, then
// one of them takes over; release by a non-holder does nothing.
func TestLeaseContract(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		const ttl = 700 * time.Millisecond
		steps := []struct {
			name, holder string
			want         bool
		}{
			{"first acquire", "a", true},
			{"another while held", "b", false},
			{"renewal by the holder", "a", true},
			{"another again", "b", false},
		}
		for _, st := range steps {
			got, err := s.AcquireLease(ctx, "hk", st.holder, ttl)
			if err != nil || got != st.want {
				t.Fatalf("%s: AcquireLease(%s) = %v, %v; want %v", st.name, st.holder, got, err, st.want)
			}
		}
		if err := s.ReleaseLease(ctx, "hk", "b"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.AcquireLease(ctx, "hk", "b", ttl); got {
			t.Fatal("a release by a non-holder freed the lease")
		}
		ls, err := s.Leases(ctx)
		if err != nil || len(ls) != 1 || ls[0].Holder != "a" {
			t.Fatalf("Leases = %+v, %v; want hk held by a", ls, err)
		}
		// Handover: a stops renewing; b gets it only once it expired.
		deadline := time.Now().Add(10 * ttl)
		for {
			got, err := s.AcquireLease(ctx, "hk", "b", ttl)
			if err != nil {
				t.Fatal(err)
			}
			if got {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("b never took over the expired lease")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got, _ := s.AcquireLease(ctx, "hk", "a", ttl); got {
			t.Fatal("the old holder renewed a lease taken over by another")
		}
		if err := s.ReleaseLease(ctx, "hk", "b"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.AcquireLease(ctx, "hk", "a", ttl); !got {
			t.Fatal("a released lease could not be taken")
		}
		for _, bad := range []struct {
			name, holder string
			ttl          time.Duration
		}{{"", "a", ttl}, {"x", "", ttl}, {"x", "a", 0}, {"x", "a", 48 * time.Hour}} {
			if _, err := s.AcquireLease(ctx, bad.name, bad.holder, bad.ttl); err == nil {
				t.Errorf("AcquireLease(%q, %q, %s) accepted", bad.name, bad.holder, bad.ttl)
			}
		}
	})
}

// TestLeaseNoTwoHolders has several stores (separate processes' writers
// on one database) contend for one short lease in a bounded loop; every
// grant is logged with the term the database gave it, and no two
// holders' terms may overlap by the database's clock.
func TestLeaseNoTwoHolders(t *testing.T) {
	u := pgURL(t)
	ctx := context.Background()
	const contenders, rounds, ttl = 4, 40, 150 * time.Millisecond
	type term struct {
		holder     string
		start, end time.Time
	}
	var mu sync.Mutex
	var terms []term
	var wg sync.WaitGroup
	errs := make(chan error, contenders)
	for i := range contenders {
		s, err := OpenURL(ctx, u, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		holder := fmt.Sprintf("c%d", i)
		wg.Go(func() {
			granted, mine := 0, -1
			for range rounds {
				var exp int64
				var held bool
				err := s.Do(ctx, func(tx *Tx) error {
					var err error
					if held, err = tx.AcquireLease("hk", holder, ttl); err != nil || !held {
						return err
					}
					// The exact term the database granted: now + ttl.
					return tx.tx.QueryRow("SELECT expires_at FROM leases WHERE name = 'hk'").Scan(&exp)
				})
				if err != nil {
					errs <- err
					return
				}
				if held {
					mu.Lock()
					start := fromNanos(exp).Add(-ttl)
					if mine >= 0 && terms[mine].end.After(start) {
						terms[mine].end = start // a renewal replaced that term
					}
					mine = len(terms)
					terms = append(terms, term{holder, start, fromNanos(exp)})
					mu.Unlock()
					// Every third term is handed back, so that the others
					// contend for a free lease too, not only an expired one.
					if granted++; granted%3 == 0 {
						var ended int64
						err := s.Do(ctx, func(tx *Tx) error {
							if err := tx.ReleaseLease("hk", holder); err != nil {
								return err
							}
							return tx.tx.QueryRow("SELECT " + tx.engine.dbNowSQL()).Scan(&ended)
						})
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						terms[mine].end = fromNanos(ended)
						mu.Unlock()
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	holders := map[string]bool{}
	for i, a := range terms {
		holders[a.holder] = true
		for _, b := range terms[i+1:] {
			// A renewal extends its holder's own term; only different
			// holders must never overlap.
			if a.holder != b.holder && a.start.Before(b.end) && b.start.Before(a.end) {
				t.Fatalf("%s held %s-%s and %s held %s-%s", a.holder, a.start, a.end, b.holder, b.start, b.end)
			}
		}
	}
	if len(holders) < 2 {
		t.Fatalf("holders %v: the lease never changed hands", holders)
	}
	t.Logf("%d grants to %d holders", len(terms), len(holders))
}

// TestHeartbeatRefusesTwins checks that a second instance of one replica ID
// is refused while the first beats, and takes over once the first is
// stale or retired.
func TestHeartbeatRefusesTwins(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		const fresh = 600 * time.Millisecond
		beat := func(instance string) error {
			return s.Do(ctx, func(tx *Tx) error {
				return tx.Heartbeat(Replica{ID: "r1", Instance: instance, AdvertiseURL: "https://127.0.0.1:7443", Version: "v", PolicySHA256: "ab"}, fresh)
			})
		}
		if err := beat("i1"); err != nil {
			t.Fatal(err)
		}
		if err := beat("i1"); err != nil {
			t.Fatalf("second beat of the same instance: %v", err)
		}
		if err := beat("i2"); !errors.Is(err, ErrTwin) {
			t.Fatalf("a twin's beat = %v; want ErrTwin", err)
		}
		rs, now, err := s.Replicas(ctx)
		if err != nil || len(rs) != 1 || rs[0].Instance != "i1" || now.Sub(rs[0].HeartbeatAt) > fresh || rs[0].AdvertiseURL != "https://127.0.0.1:7443" {
			t.Fatalf("Replicas = %+v at %s, %v", rs, now, err)
		}
		time.Sleep(fresh + 100*time.Millisecond)
		if err := beat("i2"); err != nil {
			t.Fatalf("beat after the first went stale: %v", err)
		}
		if err := s.Do(ctx, func(tx *Tx) error { return tx.RetireReplica("r1", "i2") }); err != nil {
			t.Fatal(err)
		}
		if r, _, err := s.Replica(ctx, "r1"); err != nil || !r.HeartbeatAt.IsZero() {
			t.Fatalf("retired replica = %+v, %v; want a zero heartbeat", r, err)
		}
		if err := beat("i3"); err != nil {
			t.Fatalf("beat after retirement: %v", err)
		}
	})
}

// TestPruneLeasesAndReplicas on both engines: PruneLeases deletes the
// expired leases only; PruneReplicas the rows of replicas down (or stopped
// cleanly) for longer than asked, never one beating; Replica reads one row.
func TestPruneLeasesAndReplicas(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		for _, l := range []struct {
			name string
			ttl  time.Duration
		}{{"short", 50 * time.Millisecond}, {"long", time.Hour}} {
			if got, err := s.AcquireLease(ctx, l.name, "a", l.ttl); err != nil || !got {
				t.Fatalf("acquire %s: %v, %v", l.name, got, err)
			}
		}
		for _, id := range []string{"live", "stopped"} {
			if err := s.Do(ctx, func(tx *Tx) error { return tx.Heartbeat(Replica{ID: id, Instance: "i-" + id}, time.Minute) }); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Do(ctx, func(tx *Tx) error { return tx.RetireReplica("stopped", "i-stopped") }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		var leases, reps int64
		prune := func(downFor time.Duration) {
			t.Helper()
			err := s.Do(ctx, func(tx *Tx) error {
				var err error
				if leases, err = tx.PruneLeases(); err != nil {
					return err
				}
				reps, err = tx.PruneReplicas(downFor)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		prune(time.Hour)
		if leases != 1 || reps != 0 {
			t.Fatalf("pruned %d leases, %d replicas; want the expired lease only", leases, reps)
		}
		if r, _, err := s.Replica(ctx, "stopped"); err != nil || r.Instance != "i-stopped" || !r.HeartbeatAt.IsZero() {
			t.Fatalf("Replica(stopped) = %+v, %v", r, err)
		}
		prune(200 * time.Millisecond) // "stopped" started 300ms ago; "live" beat then
		if reps != 2 {
			t.Fatalf("pruned %d replicas down for 200ms, want 2", reps)
		}
		if err := s.Do(ctx, func(tx *Tx) error { return tx.Heartbeat(Replica{ID: "live", Instance: "i-live"}, time.Minute) }); err != nil {
			t.Fatal(err)
		}
		prune(200 * time.Millisecond)
		if reps != 0 {
			t.Fatalf("pruned a replica that just beat")
		}
		if _, _, err := s.Replica(ctx, "stopped"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Replica of a pruned row: %v, want ErrNotFound", err)
		}
		ls, err := s.Leases(ctx)
		if err != nil || len(ls) != 1 || ls[0].Name != "long" {
			t.Fatalf("leases left %+v, %v; want the long one", ls, err)
		}
	})
}

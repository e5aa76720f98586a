package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// TestExclusiveAcrossReplicas has two processes' stores on one PostgreSQL
// (as two replicas) take one account's hold in a bounded loop: never both
// at once, and each gets its turn. It is what keeps two replicas' first
// sessions of one grant from creating its account twice.
func TestExclusiveAcrossReplicas(t *testing.T) {
	u := pgDatabase(t)
	ctx := context.Background()
	var inside, maxInside, turns atomic.Int32
	var wg sync.WaitGroup
	for i := range 2 {
		st, err := audit.OpenURL(ctx, u, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		d := &Daemon{store: st, replica: &replica{id: "r", instance: string(rune('a' + i)), beat: time.Second}}
		wg.Go(func() {
			for range 10 {
				c, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, release, err := d.exclusive(c, `account:"db1"@"alice"`)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				turns.Add(1)
				time.Sleep(15 * time.Millisecond)
				inside.Add(-1)
				release()
			}
		})
	}
	wg.Wait()
	if maxInside.Load() != 1 || turns.Load() != 20 {
		t.Fatalf("at most %d held at once over %d turns; want 1 over 20", maxInside.Load(), turns.Load())
	}
}

// TestHoldRenewedWhileHeld holds a lease of 600ms for three times that:
// the renewals keep another replica from taking it over all along (an
// account's create can outlast accountHoldTTL), release frees it at once,
// and a hold whose lease another replica took over (here: freed and taken
// behind its back) cancels the work's context.
func TestHoldRenewedWhileHeld(t *testing.T) {
	st, err := audit.Open(filepath.Join(t.TempDir(), "jitssh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	const ttl = 600 * time.Millisecond
	d := &Daemon{store: st, log: slog.New(slog.DiscardHandler), replica: &replica{id: "a", instance: "ia"}}
	held, release, err := d.hold(ctx, "k", ttl)
	if err != nil {
		t.Fatal(err)
	}
	for range 9 { // 1.8s, three times the ttl
		time.Sleep(ttl / 3)
		if got, err := st.AcquireLease(ctx, "k", "ib", ttl); err != nil || got {
			t.Fatalf("another replica took a held lease (%v, %v) after renewals", got, err)
		}
		if held.Err() != nil {
			t.Fatalf("hold's context ended while renewed: %v", context.Cause(held))
		}
	}
	release()
	if got, err := st.AcquireLease(ctx, "k", "ib", ttl); err != nil || !got {
		t.Fatalf("released lease not free: %v, %v", got, err)
	}
	if err := st.ReleaseLease(ctx, "k", "ib"); err != nil {
		t.Fatal(err)
	}

	held, release, err = d.hold(ctx, "k", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := st.ReleaseLease(ctx, "k", "ia"); err != nil {
		t.Fatal(err)
	}
	if got, err := st.AcquireLease(ctx, "k", "ib", time.Minute); err != nil || !got {
		t.Fatalf("take over: %v, %v", got, err)
	}
	select {
	case <-held.Done():
		if c := context.Cause(held); c != errLeaseLost {
			t.Fatalf("cause %v, want errLeaseLost", c)
		}
	case <-time.After(10 * ttl):
		t.Fatal("hold's context still live after another replica took its lease over")
	}
	release()
	if ls, err := st.Leases(ctx); err != nil || len(ls) != 1 || ls[0].Holder != "ib" {
		t.Fatalf("release of a lost hold freed the new holder's lease: %+v, %v", ls, err)
	}
}

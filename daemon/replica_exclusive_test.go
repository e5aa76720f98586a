package daemon

import (
	"context"
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
				release, err := d.exclusive(c, `account:"db1"@"alice"`)
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

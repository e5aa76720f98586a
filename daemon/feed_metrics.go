package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// feedMetrics writes the change feed's health: how far its cursor is
// behind the chain's head, how long since it last read to the head, and
// (PostgreSQL) whether its LISTEN connection is up.
func feedMetrics(ctx context.Context, b *strings.Builder, store *audit.Store, f *replicaFeed, now time.Time) error {
	if f == nil {
		return nil
	}
	h := f.feed.Health()
	head, err := store.HeadSeq(ctx)
	if err != nil {
		return err
	}
	family(b, "jitssh_feed_lag_events", "gauge", "Events committed to the chain that this replica's change feed has not read yet.")
	fmt.Fprintf(b, "jitssh_feed_lag_events %d\n", max(head-h.Cursor, 0))
	family(b, "jitssh_feed_last_read_seconds", "gauge", "Seconds since the change feed last read the chain up to its head (-1: never).")
	age := -1.0
	if !h.LastRead.IsZero() {
		age = now.Sub(h.LastRead).Seconds()
	}
	fmt.Fprintf(b, "jitssh_feed_last_read_seconds %.3f\n", age)
	if h.Postgres {
		family(b, "jitssh_feed_listening", "gauge", "1 while the change feed's PostgreSQL LISTEN connection is up; 0 means changes from other replicas arrive by polling.")
		up := 0
		if h.Listening {
			up = 1
		}
		fmt.Fprintf(b, "jitssh_feed_listening %d\n", up)
	}
	family(b, "jitssh_feed_healthy", "gauge", "1 while the change feed reads the chain (the bastion then looks live certificates up every 30s, not every 5s).")
	healthy := 0
	if f.healthy.Load() {
		healthy = 1
	}
	fmt.Fprintf(b, "jitssh_feed_healthy %d\n", healthy)
	family(b, "jitssh_feed_read_errors_total", "counter", "Reads of the chain by the change feed that failed.")
	fmt.Fprintf(b, "jitssh_feed_read_errors_total %d\n", h.ReadErrors)
	family(b, "jitssh_feed_refreshes_total", "counter", "Refreshes of the enrolled users, identities and hosts the change feed asked for.")
	fmt.Fprintf(b, "jitssh_feed_refreshes_total %d\n", f.refreshes.Load())
	family(b, "jitssh_feed_reloads_total", "counter", "Policy reloads made because another replica reloaded.")
	fmt.Fprintf(b, "jitssh_feed_reloads_total %d\n", f.reloads.Load())
	return nil
}

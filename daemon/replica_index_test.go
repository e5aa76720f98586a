package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// TestIndexCatchUpsScopedToReplica checks which catch-ups a replica
// takes at start: its own sessions' and ended sessions whose replica is
// down, unknown or from before replicas; never a session live on another.
func TestIndexCatchUpsScopedToReplica(t *testing.T) {
	st, err := audit.Open(filepath.Join(t.TempDir(), "jitssh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	const fresh = time.Minute
	sessions := []struct {
		id, replica string
		ended       bool
		want        bool
	}{
		{"mine-live", "me", false, true},
		{"mine-ended", "me", true, true},
		{"up-live", "up", false, false},
		{"up-ended", "up", true, false},
		{"down-live", "down", false, false},
		{"down-ended", "down", true, true},
		{"old-live", "", false, false},
		{"old-ended", "", true, true},
		{"gone-ended", "gone", true, true},
	}
	err = st.Do(ctx, func(tx *audit.Tx) error {
		for _, r := range []string{"up", "down"} {
			if err := tx.Heartbeat(audit.Replica{ID: r, Instance: r + "-1"}, fresh); err != nil {
				return err
			}
		}
		if err := tx.RetireReplica("down", "down-1"); err != nil {
			return err
		}
		for _, s := range sessions {
			row := audit.Session{ID: s.id, User: "alice", Host: "db1", StartedAt: testNow, Replica: s.replica, RecordingPath: s.id + ".cast.zst"}
			if s.ended {
				row.EndedAt = testNow.Add(time.Minute)
			}
			if err := tx.InsertSession(row); err != nil {
				return err
			}
			if err := tx.SetIndexPending(s.id, 3, testNow); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{store: st, replica: &replica{id: "me", beat: fresh / 3}}
	got, err := d.ownIndexCatchUps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids, want []string
	for _, p := range got {
		ids = append(ids, p.SessionID)
	}
	for _, s := range sessions {
		if s.want {
			want = append(want, s.id)
		}
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("catch-ups taken = %v\nwant %v", ids, want)
	}
}

// TestIndexCatchUpFromStaleListIndexesOnce: two replicas start while a
// down replica's ended session has a pending catch-up; both list it
// (ownIndexCatchUps) with NextLine as it was at their start. The first
// takes the index lease and finishes; the second gets the lease after it
// and must read the position again under it (gone: nothing to do), not
// catch up from its stale NextLine, which would index every line after it
// twice (the text tables have no unique key). Here the first replica is
// this daemon's own start, and the second's call is d.catchUp with the
// position it listed.
func TestIndexCatchUpFromStaleListIndexesOnce(t *testing.T) {
	dir := initDir(t)
	l := Layout{Dir: dir}
	const lines, indexedBefore = 300, 120
	store := seedBehindIndex(t, l, "dup probe", lines, indexedBefore, "dead")
	stale, err := store.PendingIndexes(context.Background()) // what a second replica listed at its start
	if err != nil || len(stale) != 1 {
		t.Fatalf("pending = %+v, %v", stale, err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	s := serve(t, dir)
	waitFor(t, "first catch-up", 30*time.Second, func() bool {
		p, err := s.d.store.PendingIndexes(context.Background())
		return err == nil && len(p) == 0
	})
	// The second replica, having waited for the lease, catches up from
	// the position it listed.
	s.d.catchUp(context.Background(), stale[0])

	hits, err := s.d.store.Search(context.Background(), audit.SearchQuery{Text: "dup probe"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, h := range hits {
		seen[h.Snippet]++
	}
	for i := 0; i < lines; i++ {
		if c := seen[fmt.Sprintf("dup probe %05d", i)]; c != 1 {
			t.Fatalf("line %d found %d times, want once (%d hits)", i, c, len(hits))
		}
	}
}

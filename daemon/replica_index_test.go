package daemon

import (
	"context"
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

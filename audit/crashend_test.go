package audit

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestForgetReplica: an up replica is refused, an unknown one is not
// found, one whose beat is older than the window, or that stopped
// cleanly, is removed.
func TestForgetReplica(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		for _, id := range []string{"stale", "retired"} {
			mustDo(t, s, func(tx *Tx) error { return tx.Heartbeat(Replica{ID: id, Instance: "i-" + id}, time.Minute) })
		}
		mustDo(t, s, func(tx *Tx) error { return tx.RetireReplica("retired", "i-retired") })
		tests := []struct {
			name, id string
			fresh    time.Duration
			want     error
		}{
			{"up", "stale", time.Hour, ErrReplicaUp},
			{"unknown", "nobody", time.Millisecond, ErrNotFound},
			{"retired, whatever the window", "retired", time.Hour, nil},
			{"beat older than the window", "stale", time.Nanosecond, nil},
			{"forgotten already", "stale", time.Nanosecond, ErrNotFound},
		}
		for _, tt := range tests {
			err := s.Do(ctx, func(tx *Tx) error { return tx.ForgetReplica(tt.id, tt.fresh) })
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("%s: ForgetReplica(%s, %s) = %v, want %v", tt.name, tt.id, tt.fresh, err, tt.want)
			}
			if _, _, err := s.Replica(ctx, tt.id); tt.want == nil && !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: replica %s still in the registry after ForgetReplica: %v", tt.name, tt.id, err)
			}
		}
	})
}

// TestVerifyListsLostRecordings: a session ended recording_lost is named
// in Lost and verify passes; an end without a recording for another
// reason is not listed.
func TestVerifyListsLostRecordings(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		for i, end := range []SessionEnd{
			{ID: "lost-b", EndReason: EndRecordingLost, ExitStatus: -1},
			{ID: "refused", EndReason: "closed"},
			{ID: "lost-a", EndReason: EndRecordingLost, ExitStatus: -1},
			{ID: "live"},
		} {
			mustDo(t, s, func(tx *Tx) error {
				if err := tx.InsertSession(Session{ID: end.ID, StartedAt: at(time.Duration(i) * time.Second), RecordingPath: "2026/01/01/" + end.ID + ".cast.zst"}); err != nil {
					return err
				}
				if end.ID == "live" {
					return nil
				}
				end.EndedAt = at(time.Minute)
				return tx.EndSession(end)
			})
		}
		res, err := s.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || !slices.Equal(res.Lost, []string{"lost-b", "lost-a"}) || res.Recordings != 0 {
			t.Errorf("Verify = %+v, want OK, Lost [lost-b lost-a] in the order they started, no recording checked", res)
		}
	})
}

package audit

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestIndexPending(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		ctx := context.Background()
		mustDo(t, s, func(tx *Tx) error {
			if err := tx.InsertSession(Session{ID: "ended", StartedAt: at(0), EndedAt: at(time.Minute), RecordingPath: "/r/ended.cast"}); err != nil {
				return err
			}
			if err := tx.InsertSession(Session{ID: "live", StartedAt: at(0), RecordingPath: "/r/live.cast"}); err != nil {
				return err
			}
			if err := tx.SetIndexPending("ended", 10, at(time.Second)); err != nil {
				return err
			}
			if err := tx.SetIndexPending("live", 0, at(2*time.Second)); err != nil {
				return err
			}
			return tx.SetIndexPending("gone", 3, at(3*time.Second))
		})
		// A later position replaces the first, in the transaction that
		// indexes the lines up to it.
		mustDo(t, s, func(tx *Tx) error {
			if err := tx.IndexText([]TextLine{{SessionID: "ended", Kind: "o", Text: "line ten"}}); err != nil {
				return err
			}
			return tx.SetIndexPending("ended", 11, at(4*time.Second))
		})
		got, err := s.PendingIndexes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []PendingIndex{
			{SessionID: "live", NextLine: 0, RecordingPath: "/r/live.cast", UpdatedAt: at(2 * time.Second)},
			{SessionID: "gone", NextLine: 3, UpdatedAt: at(3 * time.Second)},
			{SessionID: "ended", NextLine: 11, RecordingPath: "/r/ended.cast", EndedAt: at(time.Minute), UpdatedAt: at(4 * time.Second)},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("PendingIndexes = %+v\nwant %+v", got, want)
		}
		mustDo(t, s, func(tx *Tx) error {
			if err := tx.ClearIndexPending("ended"); err != nil {
				return err
			}
			return tx.ClearIndexPending("never-pending")
		})
		got, err = s.PendingIndexes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].SessionID != "live" || got[1].SessionID != "gone" {
			t.Fatalf("after clearing: %+v, want live and gone", got)
		}
	})
}

func TestIndexPendingRejects(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		for _, tc := range []struct {
			name, session string
			next          int64
			want          string
		}{
			{"empty session", "", 1, "session id is empty"},
			{"negative", "s", -1, "next line -1 is negative"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := s.Do(context.Background(), func(tx *Tx) error { return tx.SetIndexPending(tc.session, tc.next, at(0)) })
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("SetIndexPending error = %v, want %q", err, tc.want)
				}
			})
		}
		if got, err := s.PendingIndexes(context.Background()); err != nil || len(got) != 0 {
			t.Fatalf("PendingIndexes after refusals = %v, %v; want none", got, err)
		}
	})
}

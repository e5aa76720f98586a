package audit

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func liveSession(id string, start time.Duration) Session {
	return Session{
		ID: id, RequestID: "r1", User: "alice", Host: "db1", Login: "root", Serial: 1<<63 + 1, TargetSerial: 3,
		ClientAddr: "127.0.0.1:7", Command: "uptime", StartedAt: at(start),
	}
}

func TestInsertAndEndSession(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		end := SessionEnd{ID: "s1", EndedAt: at(time.Minute), ExitStatus: 3, BytesIn: 10, BytesOut: 2000,
			RecordingPath: "rec/s1.cast", RecordingSHA256: tokenHash("cast"), RecordingSize: 2100, EndReason: "exit"}
		finished := liveSession("s1", 0)
		finished.EndedAt, finished.ExitStatus, finished.BytesIn, finished.BytesOut = end.EndedAt, 3, 10, 2000
		finished.RecordingPath, finished.RecordingSHA256, finished.RecordingSize, finished.EndReason = end.RecordingPath, end.RecordingSHA256, 2100, "exit"
		// The event's Data keys and formats are those of every store so far.
		endEvent := Event{Seq: 1, Time: end.EndedAt, Type: "session.end", Code: "exit", Actor: "alice", User: "alice", Host: "db1",
			Login: "root", RequestID: "r1", SessionID: "s1", Serial: 1<<63 + 1, ClientAddr: "127.0.0.1:7",
			Data: map[string]string{"exit_status": "3", "bytes_in": "10", "bytes_out": "2000", "recording_sha256": tokenHash("cast"), "recording_size": "2100"}}
		tests := []struct {
			name     string
			ops      func(tx *Tx) error
			wantIs   error
			wantErr  string
			want     Session
			wantEvts []Event
		}{
			{name: "insert", ops: func(tx *Tx) error { return tx.InsertSession(liveSession("s1", 0)) }, want: liveSession("s1", 0)},
			{name: "insert and end", ops: func(tx *Tx) error {
				if err := tx.InsertSession(liveSession("s1", 0)); err != nil {
					return err
				}
				return tx.EndSession(end)
			}, want: finished, wantEvts: []Event{endEvent}},
			{name: "duplicate", ops: func(tx *Tx) error { return tx.InsertSession(liveSession("s0", 0)) }, wantIs: ErrConflict},
			{name: "empty id", ops: func(tx *Tx) error { return tx.InsertSession(liveSession("", 0)) }, wantErr: "id is empty"},
			{name: "zero start", ops: func(tx *Tx) error { return tx.InsertSession(Session{ID: "s1"}) }, wantErr: "started_at is zero"},
			{name: "end unknown", ops: func(tx *Tx) error { return tx.EndSession(end) }, wantIs: ErrNotFound},
			{name: "end twice", ops: func(tx *Tx) error {
				if err := tx.InsertSession(liveSession("s1", 0)); err != nil {
					return err
				}
				if err := tx.EndSession(end); err != nil {
					return err
				}
				return tx.EndSession(end)
			}, wantIs: ErrConflict},
			{name: "end without end time", ops: func(tx *Tx) error {
				if err := tx.InsertSession(liveSession("s1", 0)); err != nil {
					return err
				}
				return tx.EndSession(SessionEnd{ID: "s1"})
			}, wantErr: "ended_at is zero"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				mustDo(t, s, func(tx *Tx) error { return tx.InsertSession(liveSession("s0", -time.Hour)) })
				err := s.Do(context.Background(), tt.ops)
				checkErr(t, err, tt.wantIs, tt.wantErr)
				got, gerr := s.Session(context.Background(), "s1")
				if err != nil {
					if !errors.Is(gerr, ErrNotFound) {
						t.Errorf("Session after failed Do = %v, want ErrNotFound (rolled back)", gerr)
					}
					return
				}
				if gerr != nil {
					t.Fatal(gerr)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Session = %+v, want %+v", got, tt.want)
				}
				evs, err := s.Events(context.Background(), EventFilter{})
				if err != nil {
					t.Fatal(err)
				}
				for i := range evs {
					evs[i].PrevHash, evs[i].Hash = "", ""
				}
				if !reflect.DeepEqual(evs, tt.wantEvts) {
					t.Errorf("events = %+v, want %+v", evs, tt.wantEvts)
				}
			})
		}
	})
}

func TestSessions(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		sessions := []Session{
			{ID: "s1", User: "alice", Host: "db1", StartedAt: at(0), EndedAt: at(time.Minute)},
			{ID: "s2", User: "alice", Host: "web", StartedAt: at(2 * time.Minute)},
			{ID: "s3", User: "bob", Host: "db1", StartedAt: at(3 * time.Minute)},
			{ID: "s4", User: "bob", Host: "db1", StartedAt: at(4 * time.Minute), EndedAt: at(5 * time.Minute)},
		}
		mustDo(t, s, func(tx *Tx) error {
			for _, sess := range sessions {
				if err := tx.InsertSession(sess); err != nil {
					return err
				}
			}
			return nil
		})
		tests := []struct {
			name    string
			filter  SessionFilter
			wantIDs []string
		}{
			{name: "all newest first", filter: SessionFilter{}, wantIDs: []string{"s4", "s3", "s2", "s1"}},
			{name: "user", filter: SessionFilter{User: "alice"}, wantIDs: []string{"s2", "s1"}},
			{name: "host", filter: SessionFilter{Host: "db1"}, wantIDs: []string{"s4", "s3", "s1"}},
			{name: "live", filter: SessionFilter{Live: true}, wantIDs: []string{"s3", "s2"}},
			{name: "since inclusive", filter: SessionFilter{Since: at(3 * time.Minute)}, wantIDs: []string{"s4", "s3"}},
			{name: "until exclusive", filter: SessionFilter{Until: at(3 * time.Minute)}, wantIDs: []string{"s2", "s1"}},
			{name: "limit", filter: SessionFilter{Limit: 3}, wantIDs: []string{"s4", "s3", "s2"}},
			{name: "live for host", filter: SessionFilter{Host: "db1", Live: true}, wantIDs: []string{"s3"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Sessions(context.Background(), tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, sess := range got {
					ids = append(ids, sess.ID)
				}
				if !reflect.DeepEqual(ids, tt.wantIDs) {
					t.Errorf("Sessions(%+v) = %v, want %v", tt.filter, ids, tt.wantIDs)
				}
			})
		}
		if _, err := s.Session(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Session(unknown) = %v, want ErrNotFound", err)
		}
	})
}

// An engineer's exec command that is not UTF-8 (a Latin-1 file name) is
// recorded on both engines, as Append records such text: U+FFFD for the
// bad bytes (PostgreSQL's TEXT refused it, and with it the session).
func TestSessionNonUTF8CommandRecorded(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		err := s.Do(context.Background(), func(tx *Tx) error {
			return tx.InsertSession(Session{ID: "s1", User: "alice", Login: "root", StartedAt: at(0), Command: "exec cat caf\xe9.txt"})
		})
		if err != nil {
			t.Fatalf("InsertSession with a non-UTF-8 command: %v", err)
		}
		got, err := s.Session(context.Background(), "s1")
		if err != nil || got.Command != "exec cat caf\uFFFD.txt" {
			t.Errorf("Session = command %q, %v; want %q", got.Command, err, "exec cat caf\uFFFD.txt")
		}
	})
}

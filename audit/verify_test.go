package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

func TestVerifyDetectsTampering(t *testing.T) {
	signer := testkit.Signer(t)
	const events = 10
	tests := []struct {
		name        string
		checkpoints []int64 // seqs to checkpoint (signed with signer)
		tamper      func(t *testing.T, db *sql.DB)
		wantOK      bool
		wantEvents  int64 // events verified
		wantBad     int64
		wantProblem string
	}{
		{
			name: "untouched", checkpoints: []int64{5, 10},
			tamper: func(*testing.T, *sql.DB) {},
			wantOK: true, wantEvents: 10,
		},
		{
			name:       "edited message",
			tamper:     execAll("UPDATE events SET message = 'nothing to see' WHERE seq = 4"),
			wantEvents: 3, wantBad: 4, wantProblem: "does not match its contents",
		},
		{
			name:       "edited time by one nanosecond",
			tamper:     execAll("UPDATE events SET time = time + 1 WHERE seq = 7"),
			wantEvents: 6, wantBad: 7, wantProblem: "does not match its contents",
		},
		{
			name:       "edited data",
			tamper:     execAll(`UPDATE events SET data = '{"n":"1"}' WHERE seq = 1`),
			wantEvents: 0, wantBad: 1, wantProblem: "does not match its contents",
		},
		{
			name:       "undecodable data",
			tamper:     execAll(`UPDATE events SET data = 'not json' WHERE seq = 2`),
			wantEvents: 1, wantBad: 2, wantProblem: "decode data",
		},
		{
			name: "edited and rehashed",
			tamper: func(t *testing.T, db *sql.DB) {
				var prev string
				if err := db.QueryRow("SELECT prev_hash FROM events WHERE seq = 4").Scan(&prev); err != nil {
					t.Fatal(err)
				}
				e := Event{Seq: 4, Time: at(4 * time.Second), Type: "test", Message: "forged"}
				h, err := ChainHash(prev, e)
				if err != nil {
					t.Fatal(err)
				}
				execAll("UPDATE events SET message = 'forged', data = '{}', hash = '"+h+"' WHERE seq = 4")(t, db)
			},
			wantEvents: 4, wantBad: 5, wantProblem: "prev_hash",
		},
		{
			name:       "deleted middle row",
			tamper:     execAll("DELETE FROM events WHERE seq = 5"),
			wantEvents: 4, wantBad: 5, wantProblem: "event 5 is missing",
		},
		{
			name:       "deleted middle row and renumbered",
			tamper:     execAll("DELETE FROM events WHERE seq = 5", "UPDATE events SET seq = seq - 1 WHERE seq > 5"),
			wantEvents: 4, wantBad: 5, wantProblem: "prev_hash",
		},
		{
			name: "swapped rows",
			tamper: execAll(
				"UPDATE events SET seq = -3 WHERE seq = 3",
				"UPDATE events SET seq = 3 WHERE seq = 6",
				"UPDATE events SET seq = 6 WHERE seq = -3"),
			wantEvents: 2, wantBad: 3, wantProblem: "prev_hash",
		},
		{
			name: "swapped contents keeping seq",
			tamper: execAll(
				`UPDATE events SET message = CASE seq WHEN 3 THEN (SELECT message FROM events WHERE seq = 6)
					ELSE (SELECT message FROM events WHERE seq = 3) END,
				time = CASE seq WHEN 3 THEN (SELECT time FROM events WHERE seq = 6)
					ELSE (SELECT time FROM events WHERE seq = 3) END,
				prev_hash = CASE seq WHEN 3 THEN (SELECT prev_hash FROM events WHERE seq = 6)
					ELSE (SELECT prev_hash FROM events WHERE seq = 3) END,
				hash = CASE seq WHEN 3 THEN (SELECT hash FROM events WHERE seq = 6)
					ELSE (SELECT hash FROM events WHERE seq = 3) END
				WHERE seq IN (3, 6)`),
			wantEvents: 2, wantBad: 3, wantProblem: "prev_hash",
		},
		{
			name: "truncated tail caught by checkpoint", checkpoints: []int64{10},
			tamper:     execAll("DELETE FROM events WHERE seq >= 8"),
			wantEvents: 7, wantBad: 8, wantProblem: "removed from the tail",
		},
		{
			name: "truncated tail after the last checkpoint is not detectable", checkpoints: []int64{7},
			tamper: execAll("DELETE FROM events WHERE seq >= 9"),
			wantOK: true, wantEvents: 8,
		},
		{
			name: "truncated and regrown tail caught by checkpoint hash", checkpoints: []int64{9},
			tamper: func(t *testing.T, db *sql.DB) {
				execAll("DELETE FROM events WHERE seq >= 9")(t, db)
				var prev string
				if err := db.QueryRow("SELECT hash FROM events WHERE seq = 8").Scan(&prev); err != nil {
					t.Fatal(err)
				}
				for seq := int64(9); seq <= 10; seq++ {
					e := Event{Seq: seq, Time: at(time.Duration(seq) * time.Second), Type: "test", Message: "forged"}
					h, err := ChainHash(prev, e)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := db.Exec(`INSERT INTO events (seq, time, type, message, data, prev_hash, hash)
						VALUES (?, ?, 'test', 'forged', '{}', ?, ?)`, seq, e.Time.UnixNano(), prev, h); err != nil {
						t.Fatal(err)
					}
					prev = h
				}
			},
			wantEvents: 8, wantBad: 9, wantProblem: "checkpoint at seq 9: head hash",
		},
		{
			name: "checkpoint head hash edited", checkpoints: []int64{6},
			tamper:     execAll("UPDATE checkpoints SET head_hash = '" + GenesisHash + "' WHERE seq = 6"),
			wantBad:    6,
			wantEvents: 0, wantProblem: "checkpoint at seq 6: signature",
		},
		{
			name: "checkpoint signature edited", checkpoints: []int64{3, 6},
			tamper:      execAll("UPDATE checkpoints SET signature = zeroblob(64) WHERE seq = 6"),
			wantBad:     6,
			wantProblem: "checkpoint at seq 6: signature: does not verify",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jitssh.db")
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := int64(1); i <= events; i++ {
				mustDo(t, s, func(tx *Tx) error {
					_, err := tx.Append(Event{Type: "test", Time: at(time.Duration(i) * time.Second), Message: fmt.Sprint("event ", i)})
					return err
				})
				if slices.Contains(tt.checkpoints, i) {
					if signed, err := s.SignCheckpoint(context.Background(), signer, at(time.Hour)); err != nil || !signed {
						t.Fatalf("SignCheckpoint at seq %d: signed %v, %v", i, signed, err)
					}
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			db := rawDB(t, path)
			execAll(
				"DROP TRIGGER events_append_only_update", "DROP TRIGGER events_append_only_delete",
				"DROP TRIGGER checkpoints_append_only_update", "DROP TRIGGER checkpoints_append_only_delete",
			)(t, db)
			tt.tamper(t, db)
			db.Close()

			s, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			res, err := s.Verify(context.Background(), VerifyOptions{CheckpointKey: signer.PublicKey()})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.OK != tt.wantOK || res.FirstBad != tt.wantBad || !strings.Contains(res.Problem, tt.wantProblem) ||
				(tt.wantProblem == "") != (res.Problem == "") || res.Events != tt.wantEvents {
				t.Errorf("Verify = %+v, want OK %v, Events %d, FirstBad %d, Problem containing %q",
					res, tt.wantOK, tt.wantEvents, tt.wantBad, tt.wantProblem)
			}
			if res.OK {
				last, err := s.Events(context.Background(), EventFilter{AfterSeq: res.Events - 1})
				if err != nil || len(last) != 1 || last[0].Hash != res.Head {
					t.Errorf("Head = %s, want the last event's hash (%v, %v)", res.Head, last, err)
				}
			}
		})
	}
}

// execAll returns a tamper step running each statement in order.
func execAll(stmts ...string) func(t *testing.T, db *sql.DB) {
	return func(t *testing.T, db *sql.DB) {
		t.Helper()
		for _, q := range stmts {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
}

func TestVerifyWithoutVerifierChecksHeadHashes(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, path := openTest(t)
		mustDo(t, s, func(tx *Tx) error {
			e, err := tx.Append(Event{Type: "x", Time: at(0)})
			if err != nil {
				return err
			}
			return tx.AddCheckpoint(Checkpoint{Seq: e.Seq, HeadHash: e.Hash, Time: at(0)})
		})
		assertVerified(t, s, 1)
		execAll(dropAppendOnly(path, "checkpoints"),
			"UPDATE checkpoints SET head_hash = '"+GenesisHash+"'")(t, rawDB(t, path))
		res, err := s.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.OK || res.FirstBad != 1 || !strings.Contains(res.Problem, "head hash") {
			t.Errorf("Verify = %+v, want checkpoint head hash mismatch at seq 1", res)
		}
		if _, err := s.Verify(context.Background(), VerifyOptions{}, VerifyOptions{}); err == nil {
			t.Error("Verify with two options succeeded, want error")
		}
	})
}

func TestAddCheckpoint(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		tests := []struct {
			name    string
			cp      func(head Event) Checkpoint
			wantErr string
			wantIs  error
		}{
			{name: "valid", cp: func(h Event) Checkpoint {
				return Checkpoint{Seq: h.Seq, HeadHash: h.Hash, Time: at(0), Signature: []byte{1, 2}, Key: "k"}
			}},
			{name: "earlier event", cp: func(h Event) Checkpoint {
				return Checkpoint{Seq: 1, HeadHash: h.PrevHash, Time: at(0)}
			}},
			{name: "seq zero", cp: func(h Event) Checkpoint {
				return Checkpoint{Seq: 0, HeadHash: h.Hash, Time: at(0)}
			}, wantErr: "seq 0 is not in the chain"},
			{name: "seq beyond head", cp: func(h Event) Checkpoint {
				return Checkpoint{Seq: h.Seq + 1, HeadHash: h.Hash, Time: at(0)}
			}, wantErr: "seq 3 is not in the chain"},
			{name: "wrong hash", cp: func(h Event) Checkpoint {
				return Checkpoint{Seq: h.Seq, HeadHash: GenesisHash, Time: at(0)}
			}, wantErr: "does not match the chain"},
			{name: "zero time", cp: func(h Event) Checkpoint {
				return Checkpoint{Seq: h.Seq, HeadHash: h.Hash}
			}, wantErr: "time is zero"},
			{name: "duplicate", cp: func(h Event) Checkpoint {
				return Checkpoint{Seq: h.Seq, HeadHash: h.Hash, Time: at(0)}
			}, wantIs: ErrConflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				var head Event
				mustDo(t, s, func(tx *Tx) error {
					var err error
					for range 2 {
						if head, err = tx.Append(Event{Type: "x", Time: at(0)}); err != nil {
							return err
						}
					}
					if tt.wantIs != nil { // store it once so the second is a duplicate
						return tx.AddCheckpoint(tt.cp(head))
					}
					return nil
				})
				want := tt.cp(head)
				err := s.Do(context.Background(), func(tx *Tx) error { return tx.AddCheckpoint(want) })
				switch {
				case tt.wantIs != nil:
					if !errors.Is(err, tt.wantIs) {
						t.Fatalf("AddCheckpoint = %v, want %v", err, tt.wantIs)
					}
				case tt.wantErr != "":
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("AddCheckpoint = %v, want error containing %q", err, tt.wantErr)
					}
				default:
					if err != nil {
						t.Fatal(err)
					}
					cps, err := s.Checkpoints(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if len(cps) != 1 || cps[0].Seq != want.Seq || cps[0].HeadHash != want.HeadHash ||
						!cps[0].Time.Equal(want.Time) || string(cps[0].Signature) != string(want.Signature) || cps[0].Key != want.Key {
						t.Errorf("Checkpoints = %+v, want [%+v]", cps, want)
					}
					assertVerified(t, s, 2)
				}
			})
		}
	})
}

// dropAppendOnly is the statement that lets an attacker with the database
// update table's rows: it drops the append-only trigger.
func dropAppendOnly(path, table string) string {
	if IsPostgresURL(path) {
		return "DROP TRIGGER " + table + "_append_only ON " + table
	}
	return "DROP TRIGGER " + table + "_append_only_update"
}

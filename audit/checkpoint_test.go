package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

// failingSigner is a key whose signing always fails (a hardware token that
// went away).
type failingSigner struct{ ssh.Signer }

func (failingSigner) Sign(io.Reader, []byte) (*ssh.Signature, error) {
	return nil, errors.New("token removed")
}

// appendN appends n test events.
func appendN(t testing.TB, s *Store, n int) {
	t.Helper()
	mustDo(t, s, func(tx *Tx) error {
		for i := range n {
			if _, err := tx.Append(Event{Type: "test", Time: at(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestCheckpointMessage(t *testing.T) {
	// These bytes are what every stored checkpoint signed; they never change.
	at := time.Date(2026, 11, 26, 11, 0, 2, 123456000, time.FixedZone("CET", 3600))
	got := string(CheckpointMessage(4, "bf6b90", at))
	if want := "jitssh-checkpoint-v1\n4\nbf6b90\n2026-11-26T10:00:02.123456Z\n"; got != want {
		t.Errorf("CheckpointMessage = %q, want %q", got, want)
	}
}

func TestSignCheckpoint(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		key := testkit.Signer(t)
		now := time.Date(2026, 11, 26, 11, 0, 0, 5, time.FixedZone("CET", 3600))
		tests := []struct {
			name       string
			steps      []int // events to append before each SignCheckpoint call
			signer     ssh.Signer
			wantSigned []bool
			wantSeqs   []int64
			wantErr    string
		}{
			{name: "empty log", steps: []int{0}, signer: key, wantSigned: []bool{false}},
			{name: "signs the head", steps: []int{3}, signer: key, wantSigned: []bool{true}, wantSeqs: []int64{3}},
			{name: "head already signed", steps: []int{3, 0}, signer: key, wantSigned: []bool{true, false}, wantSeqs: []int64{3}},
			{name: "new head", steps: []int{3, 2}, signer: key, wantSigned: []bool{true, true}, wantSeqs: []int64{3, 5}},
			{name: "signer fails", steps: []int{3}, signer: failingSigner{key}, wantErr: "token removed"},
			{name: "no signer", steps: []int{3}, wantErr: "no signer"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				for i, n := range tt.steps {
					appendN(t, s, n)
					signed, err := s.SignCheckpoint(context.Background(), tt.signer, now)
					if tt.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), tt.wantErr) || signed {
							t.Fatalf("SignCheckpoint = %v, %v; want an error containing %q", signed, err, tt.wantErr)
						}
						continue
					}
					if err != nil || signed != tt.wantSigned[i] {
						t.Fatalf("SignCheckpoint %d = %v, %v; want %v", i, signed, err, tt.wantSigned[i])
					}
				}
				cps, err := s.Checkpoints(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(cps) != len(tt.wantSeqs) {
					t.Fatalf("checkpoints = %+v, want at seqs %v", cps, tt.wantSeqs)
				}
				for i, c := range cps {
					if c.Seq != tt.wantSeqs[i] || !c.Time.Equal(now) || c.Time.Location() != time.UTC || c.Key != ssh.FingerprintSHA256(key.PublicKey()) {
						t.Errorf("checkpoint %d = %+v, want seq %d at %s (UTC) by %s", i, c, tt.wantSeqs[i], now, ssh.FingerprintSHA256(key.PublicKey()))
					}
				}
				res, err := s.Verify(context.Background(), VerifyOptions{CheckpointKey: key.PublicKey()})
				if err != nil || !res.OK || res.Checkpoints != len(tt.wantSeqs) {
					t.Errorf("Verify with the signing key = %+v, %v; want OK with %d checkpoints", res, err, len(tt.wantSeqs))
				}
			})
		}
	})
}

// rehash recomputes prev_hash and hash of every event from seq from on, as
// an attacker with the file but not the key would after editing a row, and
// returns the new head hash.
func rehash(t *testing.T, db *sql.DB, from int64) string {
	t.Helper()
	rows, err := db.Query("SELECT "+eventColumns+" FROM events WHERE seq >= ? ORDER BY seq", from-1)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	prev := evs[0].Hash
	for _, e := range evs[1:] {
		h, err := ChainHash(prev, e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", prev, h, e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	return prev
}

// resign replaces the checkpoint at seq with one over head signed by signer
// and naming keyName, as an attacker with their own key would.
func resign(t *testing.T, db *sql.DB, seq int64, head string, signer ssh.Signer, keyName string) {
	t.Helper()
	var ns int64
	if err := db.QueryRow("SELECT time FROM checkpoints WHERE seq = ?", seq).Scan(&ns); err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(rand.Reader, CheckpointMessage(seq, head, fromNanos(ns)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE checkpoints SET head_hash = ?, signature = ?, key = ? WHERE seq = ?", head, ssh.Marshal(sig), keyName, seq); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCheckpointSignatures(t *testing.T) {
	key, attacker := testkit.Signer(t), testkit.Signer(t)
	keyName, attackerName := ssh.FingerprintSHA256(key.PublicKey()), ssh.FingerprintSHA256(attacker.PublicKey())
	// rewrite edits event 2 and recomputes the chain after it, so that
	// only the checkpoint at the head (seq 5) can tell.
	rewrite := func(t *testing.T, db *sql.DB) string {
		execAll("UPDATE events SET message = 'nothing happened' WHERE seq = 2")(t, db)
		return rehash(t, db, 2)
	}
	tests := []struct {
		name        string
		signer      ssh.Signer // signs the checkpoint at seq 5
		tamper      func(t *testing.T, db *sql.DB)
		verifyKey   ssh.PublicKey
		wantOK      bool
		wantProblem string
	}{
		{name: "signed by the key", signer: key, tamper: func(*testing.T, *sql.DB) {}, verifyKey: key.PublicKey(), wantOK: true},
		{name: "signed by another key", signer: attacker, tamper: func(*testing.T, *sql.DB) {}, verifyKey: key.PublicKey(),
			wantProblem: "checkpoint at seq 5: signature: signed by " + attackerName + ", not the checkpoint key " + keyName},
		{name: "recomputed chain without re-signing", signer: key, tamper: func(t *testing.T, db *sql.DB) { rewrite(t, db) },
			verifyKey: key.PublicKey(), wantProblem: "checkpoint at seq 5: head hash"},
		{name: "recomputed chain re-signed by another key", signer: key, verifyKey: key.PublicKey(),
			tamper:      func(t *testing.T, db *sql.DB) { resign(t, db, 5, rewrite(t, db), attacker, attackerName) },
			wantProblem: "checkpoint at seq 5: signature: signed by " + attackerName},
		{name: "recomputed chain re-signed under the key's name", signer: key, verifyKey: key.PublicKey(),
			tamper:      func(t *testing.T, db *sql.DB) { resign(t, db, 5, rewrite(t, db), attacker, keyName) },
			wantProblem: "checkpoint at seq 5: signature: does not verify"},
		{name: "checkpoint time edited", signer: key, verifyKey: key.PublicKey(),
			tamper:      execAll("UPDATE checkpoints SET time = time + 1"),
			wantProblem: "checkpoint at seq 5: signature: does not verify"},
		{name: "signature not an SSH signature", signer: key, verifyKey: key.PublicKey(),
			tamper:      execAll("UPDATE checkpoints SET signature = x'00ff'"),
			wantProblem: "checkpoint at seq 5: signature: cannot be decoded"},
		// Without the key only positions and head hashes are checked: a
		// consistent rewrite with a re-signed checkpoint passes. This is
		// why the daemon always verifies with its checkpoint key.
		{name: "re-signed rewrite without a key to check", signer: key, wantOK: true,
			tamper: func(t *testing.T, db *sql.DB) { resign(t, db, 5, rewrite(t, db), attacker, attackerName) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := openTest(t)
			appendN(t, s, 5)
			if signed, err := s.SignCheckpoint(context.Background(), tt.signer, at(time.Hour)); err != nil || !signed {
				t.Fatalf("SignCheckpoint = %v, %v", signed, err)
			}
			db := rawDB(t, path)
			execAll("DROP TRIGGER events_append_only_update", "DROP TRIGGER checkpoints_append_only_update")(t, db)
			tt.tamper(t, db)
			res, err := s.Verify(context.Background(), VerifyOptions{CheckpointKey: tt.verifyKey})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != tt.wantOK || !strings.Contains(res.Problem, tt.wantProblem) || res.Checkpoints != 1 ||
				(!tt.wantOK && res.FirstBad != 5) {
				t.Errorf("Verify = %+v; want OK %v, a problem at seq 5 containing %q", res, tt.wantOK, tt.wantProblem)
			}
		})
	}
}

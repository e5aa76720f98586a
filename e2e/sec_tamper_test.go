package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the attacker's SQLite client

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/sessionlog"
)

// TestIssue5TamperEvidence: with the daemon stopped (it signs a checkpoint
// as it shuts down), an attacker with write access to the SQLite file
// drops the append-only triggers and edits, deletes, swaps or truncates
// events, or rewrites the whole chain consistently; jit audit verify,
// against a daemon started on each tampered copy, exits non-zero naming
// the first bad event.
func TestIssue5TamperEvidence(t *testing.T) {
	t.Parallel()
	w := newSecWorldStopped(t)
	var target int64 // seq of the session.start event, mid-chain
	t.Run("record", func(t *testing.T) {
		w.serve(t)
		w.loginAll(t)
		if r := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "check the disk space", "--", "echo tamper-one").wait(t, commandTimeout); r.Code != 0 {
			t.Fatalf("jit ssh: %v", r)
		}
		s := secSessionWith(t, w.auditor, "tamper-one", sessionWait)
		mustRun(t, w.admin, "admin", "reload") // more events after the session
		ev, ok := findEvent(auditList(t, w.auditor, "--event", "session.start"), "session.start", nil)
		if !ok {
			t.Fatalf("no session.start event for %s", s.ID)
		}
		target = ev.Seq
	})
	if t.Failed() || target == 0 {
		t.Fatal("nothing was recorded to tamper with (the record subtest failed or did not run)")
	}

	db := filepath.Join(w.d.Data, "jitssh.db")
	var head, checkpoint int64
	withDB(t, db, func(tx *sql.Tx) {
		if err := tx.QueryRow("SELECT MAX(seq) FROM events").Scan(&head); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow("SELECT COALESCE(MAX(seq), 0) FROM checkpoints").Scan(&checkpoint); err != nil {
			t.Fatal(err)
		}
	})
	if checkpoint != head || target < 2 || target+2 > head {
		t.Fatalf("after shutdown: head %d, last checkpoint %d, target event %d; want a checkpoint at the head and the target mid-chain", head, checkpoint, target)
	}

	for _, tt := range []struct {
		name     string
		tamper   func(t *testing.T, tx *sql.Tx) // on the copy's database
		firstBad int64                          // 0: verify passes, or fails on a recording
		session  bool                           // verify names the session instead of an event
		problem  string                         // in verify's message
	}{
		{name: "untouched copy", tamper: func(*testing.T, *sql.Tx) {}},
		{name: "edit a row", firstBad: target, problem: "does not match its contents", tamper: func(t *testing.T, tx *sql.Tx) {
			mustExec(t, tx, "UPDATE events SET message = 'nothing happened' WHERE seq = ?", target)
		}},
		{name: "delete a row", firstBad: target, problem: "missing", tamper: func(t *testing.T, tx *sql.Tx) {
			mustExec(t, tx, "DELETE FROM events WHERE seq = ?", target)
		}},
		{name: "swap two rows", firstBad: target, problem: "prev_hash", tamper: func(t *testing.T, tx *sql.Tx) {
			mustExec(t, tx, "UPDATE events SET seq = -1 WHERE seq = ?", target)
			mustExec(t, tx, "UPDATE events SET seq = ? WHERE seq = ?", target, target+1)
			mustExec(t, tx, "UPDATE events SET seq = ? WHERE seq = -1", target+1)
		}},
		{name: "truncate the tail", firstBad: head - 1, problem: "removed from the tail", tamper: func(t *testing.T, tx *sql.Tx) {
			mustExec(t, tx, "DELETE FROM events WHERE seq >= ?", head-1)
		}},
		{name: "rewrite the whole chain", firstBad: checkpoint, problem: "checkpoint", tamper: func(t *testing.T, tx *sql.Tx) {
			mustExec(t, tx, "UPDATE events SET message = 'nothing happened' WHERE seq = ?", target)
			rehash(t, tx, target)
		}},
		{name: "rewrite the chain and its checkpoint", firstBad: checkpoint, problem: "signature", tamper: func(t *testing.T, tx *sql.Tx) {
			mustExec(t, tx, "UPDATE events SET message = 'nothing happened' WHERE seq = ?", target)
			newHead := rehash(t, tx, target)
			mustExec(t, tx, "DROP TRIGGER checkpoints_append_only_update")
			mustExec(t, tx, "UPDATE checkpoints SET head_hash = ? WHERE seq = ?", newHead, checkpoint)
		}},
		{name: "rewrite a recording and its sessions row", session: true, problem: "audit chain", tamper: func(t *testing.T, tx *sql.Tx) {
			// The sessions table is not chained; the digest in the
			// session.end event is.
			var id, path string
			if err := tx.QueryRow("SELECT id, recording_path FROM sessions WHERE command LIKE '%tamper-one%'").Scan(&id, &path); err != nil {
				t.Fatal(err)
			}
			// Rows name recordings relative to the recordings store (older
			// ones by absolute path): resolve it in this copy's data
			// directory, the one whose database tx is open on.
			if !filepath.IsAbs(path) {
				var seq int
				var name, file string
				if err := tx.QueryRow("PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
					t.Fatal(err)
				}
				path = filepath.Join(filepath.Dir(file), "recordings", filepath.FromSlash(path))
			}
			// The file is zstd frames: the forger rewrites the lines
			// they hold (and may store them plain, which reads too).
			var lines bytes.Buffer
			if _, err := sessionlog.WritePlain(&lines, bytes.NewReader(readFile(t, path))); err != nil {
				t.Fatal(err)
			}
			forged := bytes.ReplaceAll(lines.Bytes(), []byte("tamper-one"), []byte("tamper-two"))
			if bytes.Equal(forged, lines.Bytes()) {
				t.Fatal("the recording does not hold tamper-one: nothing to forge")
			}
			secWrite(t, path, forged)
			sum := sha256.Sum256(forged)
			mustExec(t, tx, "UPDATE sessions SET recording_sha256 = ?, recording_size = ? WHERE id = ?", hex.EncodeToString(sum[:]), len(forged), id)
		}},
		{name: "point a sessions row outside the recordings", session: true, problem: "outside the recordings directory", tamper: func(t *testing.T, tx *sql.Tx) {
			mustExec(t, tx, "UPDATE sessions SET recording_path = ? WHERE command LIKE '%tamper-one%'", filepath.Join(w.d.Data, "jitssh.db"))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := &daemon{Data: filepath.Join(t.TempDir(), "data"), UserCA: w.d.UserCA}
			if out, err := exec.Command("cp", "-a", w.d.Data, d.Data).CombinedOutput(); err != nil {
				t.Fatalf("copy the data directory: %v\n%s", err, out)
			}
			withDB(t, filepath.Join(d.Data, "jitssh.db"), func(tx *sql.Tx) {
				mustExec(t, tx, "DROP TRIGGER events_append_only_update")
				mustExec(t, tx, "DROP TRIGGER events_append_only_delete")
				// Rows from before issue 12 name recordings by the path the
				// bastion wrote, under the original data directory; such
				// rows would be pointed at the copy, as restoring a backup
				// elsewhere had to. Rows now hold names relative to the
				// recordings store, which this leaves as they are: a copied
				// data directory verifies as it is.
				mustExec(t, tx, "UPDATE sessions SET recording_path = ? || substr(recording_path, ?) WHERE substr(recording_path, 1, ?) = ?",
					d.Data, len(w.d.Data)+1, len(w.d.Data), w.d.Data)
				tt.tamper(t, tx)
			})
			d.serve(t, renderPolicy(t, secPolicy, w.login, w.everyone(), map[string]*sshdtest.Server{"db1": w.db1, "db2": w.db2}))
			auditor := secReconnect(t, w.auditor, d)
			v, r := secVerify(t, auditor)
			if tt.session {
				if r.Code == 0 || v.OK || v.BadSession == "" || !strings.Contains(v.Problem, tt.problem) || !strings.Contains(r.Stderr, "in session "+v.BadSession) {
					t.Errorf("jit audit verify = %+v, %v; want a failure naming the session and %q", v, r, tt.problem)
				}
				return
			}
			if tt.firstBad == 0 {
				if r.Code != 0 || !v.OK || v.Recordings < 1 {
					t.Fatalf("jit audit verify on an untouched copy: %+v %v; want OK with its recordings checked", v, r)
				}
				return
			}
			if r.Code == 0 || v.OK || v.FirstBad != tt.firstBad || !strings.Contains(v.Problem, tt.problem) {
				t.Errorf("jit audit verify = %+v; want a failure at event %d mentioning %q", v, tt.firstBad, tt.problem)
			}
			if want := "at event " + strconv.FormatInt(tt.firstBad, 10); !strings.Contains(r.Stderr, want) {
				t.Errorf("jit audit verify stderr %q does not name %q", r.Stderr, want)
			}
		})
	}
}

// secReconnect returns e with a fresh JIT_HOME whose login points at d:
// the token is the one e got before the data directory was copied, so the
// copy's audit trail gains no login event.
func secReconnect(t testing.TB, e *engineer, d *daemon) *engineer {
	t.Helper()
	cfg, err := creds.Dir{Config: e.Home, State: filepath.Join(e.Home, "state")}.LoadConfig()
	if err != nil {
		t.Fatalf("load %s's config: %v", e.Name, err)
	}
	cfg.CA = "https://" + d.API
	c := *e
	c.Home = t.TempDir()
	if err := (creds.Dir{Config: c.Home, State: filepath.Join(c.Home, "state")}).SaveConfig(cfg); err != nil {
		t.Fatalf("save %s's config: %v", e.Name, err)
	}
	return &c
}

// withDB opens the SQLite file directly, as an attacker would, and runs f
// in one transaction.
func withDB(t testing.TB, path string, f func(tx *sql.Tx)) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	f(tx)
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit to %s: %v", path, err)
	}
}

func mustExec(t testing.TB, tx *sql.Tx, query string, args ...any) {
	t.Helper()
	if _, err := tx.Exec(query, args...); err != nil {
		t.Fatalf("%s %v: %v", query, args, err)
	}
}

// rehash recomputes prev_hash and hash of every event from seq from on with
// audit.ChainHash, making the chain consistent again, and returns the new
// head hash. It first checks that it reproduces the stored hash of the
// event before from, so that the rewrite is one verify would accept
// without a checkpoint.
func rehash(t testing.TB, tx *sql.Tx, from int64) string {
	t.Helper()
	rows, err := tx.Query(`SELECT seq, time, type, code, actor, user, host, login, request_id, session_id, serial, client_addr, message, data, prev_hash, hash
		FROM events WHERE seq >= ? ORDER BY seq`, from-1)
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	for rows.Next() {
		var e audit.Event
		var ns, serial int64
		var data string
		if err := rows.Scan(&e.Seq, &ns, &e.Type, &e.Code, &e.Actor, &e.User, &e.Host, &e.Login, &e.RequestID, &e.SessionID, &serial, &e.ClientAddr, &e.Message, &data, &e.PrevHash, &e.Hash); err != nil {
			t.Fatal(err)
		}
		e.Time, e.Serial = time.Unix(0, ns).UTC(), uint64(serial)
		if err := json.Unmarshal([]byte(data), &e.Data); err != nil {
			t.Fatalf("event %d data %q: %v", e.Seq, data, err)
		}
		evs = append(evs, e)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := audit.ChainHash(evs[0].PrevHash, evs[0]); err != nil || got != evs[0].Hash {
		t.Fatalf("recomputed hash of event %d = %s, %v; stored %s: the rewrite would not be consistent", evs[0].Seq, got, err, evs[0].Hash)
	}
	prev := evs[0].Hash
	for _, e := range evs[1:] {
		h, err := audit.ChainHash(prev, e)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", prev, h, e.Seq)
		prev = h
	}
	return prev
}

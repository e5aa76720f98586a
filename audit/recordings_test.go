package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/crypto/ssh"
)

// recDir is where the test sessions' rows say their recordings are.
const recDir = "/data/recordings"

// testCast is a recording's content.
func testCast(id string) []byte {
	return []byte(`{"version":2,"width":80,"height":24}` + "\n" + `[0.5,"o","hello from ` + id + `\r\n"]` + "\n")
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// recordedSessions stores finished sessions s1 and s2 (s1 started first)
// with their recordings, and a live s3, and returns the recordings' files.
func recordedSessions(t *testing.T, s *Store) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for i, id := range []string{"s1", "s2", "s3"} {
		start := time.Duration(i) * time.Minute
		sess := liveSession(id, start)
		sess.RecordingPath = recDir + "/2026/03/14/" + id + ".cast"
		cast := testCast(id)
		fsys["2026/03/14/"+id+".cast"] = &fstest.MapFile{Data: cast}
		mustDo(t, s, func(tx *Tx) error {
			if err := tx.InsertSession(sess); err != nil {
				return err
			}
			if id == "s3" {
				return nil
			}
			return tx.EndSession(SessionEnd{ID: id, EndedAt: at(start + time.Second), ExitStatus: i, BytesIn: 5, BytesOut: 40,
				RecordingPath: sess.RecordingPath, RecordingSHA256: digest(cast), RecordingSize: int64(len(cast)), EndReason: "exit"})
		})
	}
	return fsys
}

func TestVerifyRecordings(t *testing.T) {
	type tamper func(t *testing.T, db *sql.DB, fsys fstest.MapFS)
	run := func(stmts ...string) tamper {
		return func(t *testing.T, db *sql.DB, _ fstest.MapFS) { execAll(stmts...)(t, db) }
	}
	file := func(id string) string { return "2026/03/14/" + id + ".cast" }
	tests := []struct {
		name           string
		tamper         tamper
		noFS           bool
		wantSession    string // "" with wantProblem "": verifies
		wantProblem    string
		wantRecordings int
	}{
		{name: "untouched", tamper: run(), wantRecordings: 2},
		{name: "flipped byte", wantSession: "s2", wantProblem: "recording of session s2 has SHA-256", wantRecordings: 2,
			tamper: func(_ *testing.T, _ *sql.DB, fsys fstest.MapFS) { fsys[file("s2")].Data[40] ^= 0x20 }},
		{name: "truncated file", wantSession: "s2", wantProblem: "recording of session s2 is 40 bytes, the audit chain recorded", wantRecordings: 2,
			tamper: func(_ *testing.T, _ *sql.DB, fsys fstest.MapFS) { fsys[file("s2")].Data = fsys[file("s2")].Data[:40] }},
		{name: "missing file", wantSession: "s1", wantProblem: "recording of session s1: open " + file("s1") + ": file does not exist", wantRecordings: 1,
			tamper: func(_ *testing.T, _ *sql.DB, fsys fstest.MapFS) { delete(fsys, file("s1")) }},
		{name: "first bad session in start order", wantSession: "s1", wantProblem: "recording of session s1 has SHA-256", wantRecordings: 1,
			tamper: func(_ *testing.T, _ *sql.DB, fsys fstest.MapFS) {
				fsys[file("s1")].Data[40] ^= 0x20
				fsys[file("s2")].Data[40] ^= 0x20
			}},
		{name: "path outside the FS", wantSession: "s2", wantRecordings: 2,
			wantProblem: "recording of session s2: path /etc/passwd is outside the recordings directory " + recDir,
			tamper:      run("UPDATE sessions SET recording_path = '/etc/passwd' WHERE id = 's2'")},
		{name: "path climbing out of the FS", wantSession: "s2", wantRecordings: 2, wantProblem: "is outside the recordings directory",
			tamper: run("UPDATE sessions SET recording_path = '" + recDir + "/../secrets/s2.cast' WHERE id = 's2'")},
		{name: "path of the directory itself", wantSession: "s2", wantRecordings: 2, wantProblem: "is outside the recordings directory",
			tamper: run("UPDATE sessions SET recording_path = '" + recDir + "' WHERE id = 's2'")},
		{name: "row edited to match a rewritten file", wantSession: "s2", wantRecordings: 1,
			wantProblem: "session s2: its row says recording sha256 " + digest(testCast("s3")),
			tamper: func(t *testing.T, db *sql.DB, fsys fstest.MapFS) {
				forged := testCast("s3")
				fsys[file("s2")].Data = forged
				if _, err := db.Exec("UPDATE sessions SET recording_sha256 = ?, recording_size = ? WHERE id = 's2'", digest(forged), len(forged)); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "row's exit status edited", wantSession: "s1", wantProblem: "session s1: its row says exit status 9",
			tamper: run("UPDATE sessions SET exit_status = 9 WHERE id = 's1'")},
		{name: "row's recording path blanked", wantSession: "s1", wantProblem: "session s1: the audit chain (event 1) records a recording",
			tamper: run("UPDATE sessions SET recording_path = '' WHERE id = 's1'")},
		{name: "row made live again", wantSession: "s1", wantProblem: "session s1: the audit chain (event 1) records its end but its row says it is live",
			tamper: run("UPDATE sessions SET ended_at = 0 WHERE id = 's1'")},
		{name: "row deleted", wantSession: "s2", wantRecordings: 1, wantProblem: "session s2: the audit chain (event 2) records its end but the sessions table has no row",
			tamper: run("DELETE FROM sessions WHERE id = 's2'")},
		{name: "row finished without its event", wantSession: "s3", wantRecordings: 2, wantProblem: "session s3 ended but the audit chain has no session.end event for it",
			tamper: run("UPDATE sessions SET ended_at = 1 WHERE id = 's3'")},
		{name: "no recordings to check in", noFS: true, tamper: run(), wantSession: "s1", wantRecordings: 1,
			wantProblem: "recording of session s1: no recordings directory was given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := openTest(t)
			fsys := recordedSessions(t, s)
			tt.tamper(t, rawDB(t, path), fsys)
			opts := VerifyOptions{Recordings: Recordings{Dir: recDir, FS: fsys}}
			if tt.noFS {
				opts.Recordings = Recordings{}
			}
			res, err := s.Verify(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			wantOK := tt.wantProblem == ""
			if res.OK != wantOK || res.BadSession != tt.wantSession || !strings.Contains(res.Problem, tt.wantProblem) ||
				res.Recordings != tt.wantRecordings || res.FirstBad != 0 || res.Events != 2 {
				t.Errorf("Verify = %+v; want OK %v, session %q, %d recordings, problem containing %q",
					res, wantOK, tt.wantSession, tt.wantRecordings, tt.wantProblem)
			}
		})
	}
}

func TestVerifyChainBeforeRecordings(t *testing.T) {
	s, path := openTest(t)
	fsys := recordedSessions(t, s)
	delete(fsys, "2026/03/14/s1.cast")
	execAll("DROP TRIGGER events_append_only_update", "UPDATE events SET code = 'forged' WHERE seq = 2")(t, rawDB(t, path))
	res, err := s.Verify(context.Background(), VerifyOptions{Recordings: Recordings{Dir: recDir, FS: fsys}})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.FirstBad != 2 || res.BadSession != "" || res.Recordings != 0 || !strings.Contains(res.Problem, "event 2") {
		t.Errorf("Verify = %+v; want the edited event 2 reported, no session checked", res)
	}
}

func TestDirRecordings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "recordings")
	s, _ := openTest(t)
	cast := testCast("s1")
	p := filepath.Join(dir, "2026", "03", "14", "s1.cast")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, cast, 0o600); err != nil {
		t.Fatal(err)
	}
	mustDo(t, s, func(tx *Tx) error {
		if err := tx.InsertSession(liveSession("s1", 0)); err != nil {
			return err
		}
		return tx.EndSession(SessionEnd{ID: "s1", EndedAt: at(time.Second), RecordingPath: p, RecordingSHA256: digest(cast), RecordingSize: int64(len(cast))})
	})
	res, err := s.Verify(context.Background(), VerifyOptions{Recordings: DirRecordings(dir)})
	if err != nil || !res.OK || res.Recordings != 1 {
		t.Fatalf("Verify = %+v, %v; want the recording verified", res, err)
	}
	if err := os.WriteFile(p, bytes.ToUpper(cast), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Verify(context.Background(), VerifyOptions{Recordings: DirRecordings(dir)}); err != nil || res.OK || res.BadSession != "s1" {
		t.Fatalf("Verify after rewriting the file = %+v, %v; want session s1 reported", res, err)
	}
}

func TestRecordingsName(t *testing.T) {
	tests := []struct {
		dir, path string
		want      string // "" : outside
	}{
		{dir: "/data/recordings", path: "/data/recordings/2026/03/14/s1.cast", want: "2026/03/14/s1.cast"},
		{dir: "/data/recordings/", path: "/data/recordings//2026/./s1.cast", want: "2026/s1.cast"},
		{dir: "data/recordings", path: "data/recordings/2026/s1.cast", want: "2026/s1.cast"},
		{dir: "/data/recordings", path: "/data/recordings/../db/jitssh.db"},
		{dir: "/data/recordings", path: "/data/recordings-old/s1.cast"},
		{dir: "/data/recordings", path: "/data/recordings"},
		{dir: "/data/recordings", path: "2026/03/14/s1.cast.zst", want: "2026/03/14/s1.cast.zst"},
		{dir: "/data/recordings", path: "data/recordings/s1.cast", want: "data/recordings/s1.cast"},
		{dir: "/data/recordings", path: "2026/../../db/jitssh.db"},
		{dir: "/data/recordings", path: "./2026/s1.cast"},
		{dir: "/data/recordings", path: "."},
		{dir: "/data/recordings", path: ""},
	}
	for _, tt := range tests {
		got, err := Recordings{Dir: tt.dir}.name(tt.path)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("Recordings{Dir: %q}.name(%q) = %q, %v; want %q", tt.dir, tt.path, got, err, tt.want)
		}
	}
}

// TestVerifyStoreOfTheFirstFormat loads rows that jitd wrote before audit
// owned the session end (testdata/v1: the session.end facts as Data map
// strings, a checkpoint signed by daemon code) and checks that they verify,
// and that tampering with them is still caught.
func TestVerifyStoreOfTheFirstFormat(t *testing.T) {
	rows, err := os.ReadFile(filepath.Join("testdata", "v1", "store.sql"))
	if err != nil {
		t.Fatal(err)
	}
	pubText, err := os.ReadFile(filepath.Join("testdata", "v1", "checkpoint_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	const dir = "/var/lib/jitssh/recordings" // as the rows name it
	cast, err := os.ReadFile(filepath.Join("testdata", "v1", "recordings", "2026", "11", "26", "s_golden1.cast"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		file        []byte
		wantProblem string
	}{
		{name: "as written", file: cast},
		{name: "recording edited", file: bytes.Replace(cast, []byte("hello"), []byte("HELLO"), 1), wantProblem: "recording of session s_golden1 has SHA-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := openTest(t)
			if _, err := rawDB(t, path).Exec(string(rows)); err != nil {
				t.Fatalf("load testdata/v1/store.sql: %v", err)
			}
			fsys := fstest.MapFS{"2026/11/26/s_golden1.cast": &fstest.MapFile{Data: tt.file}}
			res, err := s.Verify(context.Background(), VerifyOptions{CheckpointKey: pub, Recordings: Recordings{Dir: dir, FS: fsys}})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != (tt.wantProblem == "") || !strings.Contains(res.Problem, tt.wantProblem) || res.Events != 5 || res.Checkpoints != 1 || res.Recordings != 1 {
				t.Errorf("Verify = %+v; want 5 events, 1 checkpoint, 1 recording and problem %q", res, tt.wantProblem)
			}
		})
	}
}

func TestSessionEndOf(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		data := SessionEnd{ExitStatus: -1, BytesIn: 11, BytesOut: 1 << 40, RecordingSHA256: digest(nil), RecordingSize: 120}.data()
		without := func(key string) map[string]string {
			m := map[string]string{}
			for k, v := range data {
				if k != key {
					m[k] = v
				}
			}
			return m
		}
		with := func(key, v string) map[string]string {
			m := without(key)
			m[key] = v
			return m
		}
		tests := []struct {
			name    string
			data    map[string]string
			want    SessionEnd
			wantErr string
		}{
			{name: "round trip", data: data, want: SessionEnd{ID: "s1", EndedAt: at(0), EndReason: "exit", ExitStatus: -1, BytesIn: 11,
				BytesOut: 1 << 40, RecordingSHA256: digest(nil), RecordingSize: 120}},
			{name: "first format", data: map[string]string{"exit_status": "7", "bytes_in": "11", "bytes_out": "31", "recording_sha256": "", "recording_size": "0"},
				want: SessionEnd{ID: "s1", EndedAt: at(0), EndReason: "exit", ExitStatus: 7, BytesIn: 11, BytesOut: 31}},
			{name: "no digest", data: without("recording_sha256"), wantErr: "session.end event 9 has no recording_sha256"},
			{name: "no size", data: without("recording_size"), wantErr: "has no recording_size"},
			{name: "size not a number", data: with("bytes_out", "31 bytes"), wantErr: `bytes_out "31 bytes" is not an integer`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := sessionEndOf(Event{Seq: 9, Type: "session.end", Time: at(0), Code: "exit", SessionID: "s1", Data: tt.data})
				checkErr(t, err, nil, tt.wantErr)
				if err == nil && !reflect.DeepEqual(got, tt.want) {
					t.Errorf("sessionEndOf = %+v, want %+v", got, tt.want)
				}
			})
		}
	})
}

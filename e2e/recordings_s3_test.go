package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/jitssh/jitssh/internal/s3test"
	"github.com/jitssh/jitssh/internal/testkit"
)

// uploadWait bounds how long a finished recording takes to reach the
// object store once it is reachable (the uploader's backoff is at most a
// minute; tests see the first retries, a second or two apart).
const uploadWait = 45 * time.Second

// TestIssue12RecordingsInObjectStorage runs jitd serve --recordings
// s3://... against a real versitygw and a real sshd target: a session's
// recording is uploaded and leaves the spool; jit replay, jit sessions
// export and jit audit verify read it from the object store; the store
// stopped mid-session and started again loses nothing; jitd restarted with
// uploads pending uploads them; a tampered object fails verify.
func TestIssue12RecordingsInObjectStorage(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	w := newSecWorldStopped(t)
	w.d.Env = srv.EnvList()
	flags := []string{"--recordings", "s3://" + s3test.Bucket + "/jit", "--s3-endpoint", srv.Endpoint, "--s3-region", "us-east-1",
		"--metrics", "127.0.0.1:0", "--shutdown-timeout", "2s"}
	w.serve(t, flags...)
	w.loginAll(t)
	alice, auditor, login := w.alice, w.auditor, w.login
	spool := filepath.Join(w.d.Data, "recordings")

	var first string // the first session's ID
	t.Run("uploaded, then read from the object store", func(t *testing.T) {
		r := start(t, alice, "ssh", login+"@db1", "--reason", "check the disk space", "--", "echo s3-first-output").wait(t, commandTimeout)
		if r.Code != 0 {
			t.Fatalf("jit ssh: %v", r)
		}
		s := secSessionWith(t, auditor, "s3-first-output", sessionWait)
		first = s.ID
		waitSpoolEmpty(t, spool)
		if sum, size := storedObject(t, srv, s.ID); sum != s.RecordingSHA256 || size != s.RecordingSize {
			t.Fatalf("stored object SHA-256 %s size %d; the chain's %s size %d", sum, size, s.RecordingSHA256, s.RecordingSize)
		}
		readBack(t, w, s.ID, "s3-first-output", true)
	})

	t.Run("object store stopped mid-session", func(t *testing.T) {
		ssh := start(t, alice, "ssh", login+"@db1", "--", "echo mid-begin; sleep 3; echo mid-end")
		testkit.WaitFor(t, 10*time.Second, "the session to be live", func() bool {
			for _, s := range secSessions(t, auditor, "--live") {
				if strings.Contains(s.Command, "mid-begin") {
					return true
				}
			}
			return ssh.exited()
		})
		srv.Stop()
		if r := ssh.wait(t, commandTimeout); r.Code != 0 || !strings.Contains(r.Stdout, "mid-end") {
			t.Fatalf("jit ssh with the object store down: %v", r)
		}
		s := secSessionWith(t, auditor, "mid-begin", sessionWait)
		metrics := metricsAddr(t, w.d)
		testkit.WaitFor(t, 10*time.Second, "the backlog in the metrics", func() bool {
			return strings.Contains(scrape(t, "http://"+metrics+"/metrics"), "jitssh_recordings_upload_pending_files 1\n")
		})
		// Still in the spool, so export and replay read it there; verify
		// cannot read the first session's object now, and says so.
		readBack(t, w, s.ID, "mid-end", false)
		if v, _ := secVerify(t, auditor); v.OK || v.BadSession != first || !strings.Contains(v.Problem, "connection refused") {
			t.Errorf("jit audit verify with the object store down: %+v; want the first session's object unreadable", v)
		}
		srv.Start()
		waitSpoolEmpty(t, spool)
		if sum, _ := storedObject(t, srv, s.ID); sum != s.RecordingSHA256 {
			t.Fatalf("stored object SHA-256 %s, the chain's %s", sum, s.RecordingSHA256)
		}
		readBack(t, w, s.ID, "mid-end", true)
		if !strings.Contains(scrape(t, "http://"+metrics+"/metrics"), "jitssh_recordings_upload_pending_files 0\n") {
			t.Errorf("backlog not back to 0 after the upload:\n%s", scrape(t, "http://"+metrics+"/metrics"))
		}
	})

	t.Run("tampered object fails verify", func(t *testing.T) {
		p := srv.ObjectPath(objectKey(t, srv, first))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x55
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		v, vr := secVerify(t, auditor)
		if v.OK || v.BadSession != first || vr.Code == 0 {
			t.Errorf("jit audit verify after tampering with the object of %s: %+v\n%v", first, v, vr)
		}
		b[len(b)/2] ^= 0x55
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if v, vr := secVerify(t, auditor); !v.OK {
			t.Fatalf("jit audit verify with the object restored: %+v\n%v", v, vr)
		}
	})
	// Last: the daemon it starts again stops with this subtest.
	t.Run("jitd restarted with uploads pending", func(t *testing.T) {
		srv.Stop()
		if r := start(t, alice, "ssh", login+"@db1", "--", "echo pending-at-restart").wait(t, commandTimeout); r.Code != 0 {
			t.Fatalf("jit ssh: %v", r)
		}
		s := secSessionWith(t, auditor, "pending-at-restart", sessionWait)
		w.d.terminate(t)
		if n := spoolCount(t, spool); n != 1 {
			t.Fatalf("spool holds %d recordings after jitd stopped with the store down, want 1", n)
		}
		srv.Start()
		w.serve(t, flags...)
		w.loginAll(t) // the API listens on a new port
		waitSpoolEmpty(t, spool)
		if sum, _ := storedObject(t, srv, s.ID); sum != s.RecordingSHA256 {
			t.Fatalf("stored object SHA-256 %s, the chain's %s", sum, s.RecordingSHA256)
		}
		readBack(t, w, s.ID, "pending-at-restart", true)
	})

}

// readBack checks that export and replay (and verify, with verify) read
// session id's recording and see want in it.
func readBack(t *testing.T, w *secWorld, id, want string, verify bool) {
	t.Helper()
	if text := mustRun(t, w.auditor, "sessions", "export", id, "--format", "text"); !strings.Contains(text, want) {
		t.Errorf("jit sessions export %s lacks %q:\n%s", id, want, text)
	}
	screen, code := secStartPTY(t, w.auditor, "replay", id, "--speed", "8", "--idle-limit", "0.2s").wait(t, 30*time.Second)
	if code != 0 || !strings.Contains(screen, want) {
		t.Errorf("jit replay %s: exit %d, want %q on the screen:\n%q", id, code, want, screen)
	}
	if !verify {
		return
	}
	if v, vr := secVerify(t, w.auditor); vr.Code != 0 || !v.OK {
		t.Errorf("jit audit verify: %+v\n%v", v, vr)
	}
}

func spoolCount(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitSpoolEmpty(t *testing.T, dir string) {
	t.Helper()
	testkit.WaitFor(t, uploadWait, "the spool "+dir+" to be empty", func() bool { return spoolCount(t, dir) == 0 })
}

// objectKey finds the key of session id's recording in the bucket.
func objectKey(t *testing.T, srv *s3test.Server, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for o := range srv.Client().ListObjects(ctx, s3test.Bucket, minio.ListObjectsOptions{Prefix: "jit/", Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list objects: %v", o.Err)
		}
		if strings.HasSuffix(o.Key, "/"+id+".cast.zst") {
			return o.Key
		}
	}
	t.Fatalf("no object of session %s under jit/", id)
	return ""
}

// storedObject returns the SHA-256 and size of session id's object.
func storedObject(t *testing.T, srv *s3test.Server, id string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(srv.ObjectPath(objectKey(t, srv, id)))
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b), int64(len(b))
}

var metricsLine = regexp.MustCompile(`msg="jitd serving" .* metrics=(\S+)`)

func metricsAddr(t *testing.T, d *daemon) string {
	t.Helper()
	m := metricsLine.FindAllStringSubmatch(d.log.String(), -1)
	if m == nil {
		t.Fatalf("no metrics address in the jitd log:\n%s", d.log)
	}
	return m[len(m)-1][1]
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

package recstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/jitssh/jitssh/internal/s3test"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/sessionlog"
)

// ends is a Lookup over a map the test fills.
type ends struct {
	mu sync.Mutex
	m  map[string]SessionEnd
}

func (e *ends) set(name string, end SessionEnd) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]SessionEnd{}
	}
	e.m[name] = end
}

func (e *ends) lookup(_ context.Context, name string) (SessionEnd, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	end, ok := e.m[name]
	return end, ok, nil
}

// open returns a started store on srv's bucket under prefix "rec", closed
// in t.Cleanup.
func open(t *testing.T, srv *s3test.Server, spool string, e *ends) *Store {
	t.Helper()
	srv.Env(t)
	st, err := Open(Config{
		Location: Location{Bucket: s3test.Bucket, Prefix: "rec"}, S3: S3Config{Endpoint: srv.Endpoint, Region: "us-east-1"},
		Spool: spool, Lookup: e.lookup, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Poll: 50 * time.Millisecond, RetryFirst: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.Close(ctx)
	})
	return st
}

// testWriter sends the store's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// recording is a growing recording in the spool, written by sessionlog.
type recording struct {
	t    *testing.T
	path string
	name string
	w    *sessionlog.Writer
}

func newRecording(t *testing.T, spool, name string) *recording {
	t.Helper()
	p := filepath.Join(spool, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	w, err := sessionlog.Create(p, sessionlog.Header{Version: 2, Width: 80, Height: 24}, sessionlog.WriterOptions{SyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &recording{t: t, path: p, name: name, w: w}
}

// output writes n bytes of incompressible text (base64 of random bytes).
func (r *recording) output(n int) {
	r.t.Helper()
	r.outputB(r.t, n)
}

func (r *recording) outputB(t testing.TB, n int) {
	t.Helper()
	buf := make([]byte, 48<<10)
	for n > 0 {
		_, _ = rand.Read(buf)
		line := []byte(base64.StdEncoding.EncodeToString(buf) + "\r\n")
		if err := r.w.Output(line); err != nil {
			t.Fatal(err)
		}
		n -= len(line)
	}
}

func (r *recording) close() sessionlog.Summary {
	r.t.Helper()
	sum, err := r.w.Close()
	if err != nil {
		r.t.Fatal(err)
	}
	return sum
}

// object returns the stored object's SHA-256 and size.
func object(t *testing.T, srv *s3test.Server, key string) (string, int64) {
	t.Helper()
	o, err := srv.Client().GetObject(context.Background(), s3test.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	h := sha256.New()
	n, err := io.Copy(h, o)
	if err != nil {
		t.Fatalf("read object %s: %v", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func gone(path string) func() bool {
	return func() bool { _, err := os.Stat(path); return errors.Is(err, fs.ErrNotExist) }
}

func TestUploadGrowingInParts(t *testing.T) {
	srv := s3test.Start(t)
	spool := t.TempDir()
	st := open(t, srv, spool, &ends{})
	r := newRecording(t, spool, "2026/12/01/s1.cast.zst")
	st.Started(r.path)
	r.output(7 << 20)
	// A part leaves the spool's backlog while the session still records.
	testkit.WaitFor(t, 20*time.Second, "a part uploaded while the recording grows", func() bool {
		b := st.Backlog()
		fi, err := os.Stat(r.path)
		return err == nil && b.Files == 1 && fi.Size() >= MinPartSize && b.Bytes < fi.Size()-MinPartSize/2
	})
	r.output(1 << 20)
	sum := r.close()
	st.Ended(r.path, sum.SHA256, sum.Size)
	testkit.WaitFor(t, 20*time.Second, "spool file removed after upload", gone(r.path))
	got, n := object(t, srv, "rec/2026/12/01/s1.cast.zst")
	if got != sum.SHA256 || n != sum.Size {
		t.Fatalf("object has SHA-256 %s over %d bytes, the writer's summary %s over %d", got, n, sum.SHA256, sum.Size)
	}
	if sum.Size <= MinPartSize {
		t.Fatalf("recording is %d bytes: too small to need a multipart upload", sum.Size)
	}
	if b := st.Backlog(); b != (Backlog{}) {
		t.Fatalf("backlog after upload = %+v, want none", b)
	}
}

func TestStoreDownMidSession(t *testing.T) {
	srv := s3test.Start(t)
	spool := t.TempDir()
	st := open(t, srv, spool, &ends{})
	r := newRecording(t, spool, "2026/12/01/s2.cast.zst")
	st.Started(r.path)
	r.output(1 << 20)
	srv.Stop()
	r.output(6 << 20)
	sum := r.close()
	st.Ended(r.path, sum.SHA256, sum.Size)
	// While the store is down the recording stays in the spool, counted.
	testkit.WaitFor(t, 10*time.Second, "the backlog counts the whole recording", func() bool {
		b := st.Backlog()
		return b.Files == 1 && b.Bytes == sum.Size
	})
	if _, err := os.Stat(r.path); err != nil {
		t.Fatalf("spool file while the store is down: %v", err)
	}
	srv.Start()
	testkit.WaitFor(t, 30*time.Second, "upload after the store is back", gone(r.path))
	if got, n := object(t, srv, "rec/2026/12/01/s2.cast.zst"); got != sum.SHA256 || n != sum.Size {
		t.Fatalf("object has SHA-256 %s over %d bytes, want %s over %d", got, n, sum.SHA256, sum.Size)
	}
}

func TestSpoolLeftByEarlierRun(t *testing.T) {
	srv := s3test.Start(t)
	spool := t.TempDir()
	e := &ends{}
	type left struct {
		name   string
		end    func(sessionlog.Summary) (SessionEnd, bool)
		stored bool // uploaded and removed from the spool
	}
	cases := []left{
		{"2026/12/01/ended.cast.zst", func(s sessionlog.Summary) (SessionEnd, bool) {
			return SessionEnd{Ended: true, SHA256: s.SHA256, Size: s.Size}, true
		}, true},
		{"2026/12/01/live.cast.zst", func(sessionlog.Summary) (SessionEnd, bool) { return SessionEnd{}, true }, true},
		{"2026/12/01/norow.cast.zst", func(sessionlog.Summary) (SessionEnd, bool) { return SessionEnd{}, false }, true},
		{"2026/12/01/differs.cast.zst", func(s sessionlog.Summary) (SessionEnd, bool) {
			return SessionEnd{Ended: true, SHA256: s.SHA256, Size: s.Size + 1}, true
		}, false},
	}
	sums := map[string]sessionlog.Summary{}
	for _, c := range cases {
		r := newRecording(t, spool, c.name)
		r.output(64 << 10)
		sums[c.name] = r.close()
		if end, ok := c.end(sums[c.name]); ok {
			e.set(c.name, end)
		}
	}
	st := open(t, srv, spool, e)
	for _, c := range cases {
		if !c.stored {
			continue
		}
		testkit.WaitFor(t, 20*time.Second, c.name+" uploaded", gone(filepath.Join(spool, c.name)))
		if got, n := object(t, srv, "rec/"+c.name); got != sums[c.name].SHA256 || n != sums[c.name].Size {
			t.Errorf("%s: object SHA-256 %s over %d bytes, want %s over %d", c.name, got, n, sums[c.name].SHA256, sums[c.name].Size)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(spool, "2026/12/01/differs.cast.zst")); err != nil {
		t.Fatalf("a spool file that differs from the chain must stay: %v", err)
	}
	if b := st.Backlog(); b.Files != 1 {
		t.Fatalf("backlog = %+v, want the one file that differs from the chain", b)
	}
}

func TestFSReadsSpoolThenStore(t *testing.T) {
	srv := s3test.Start(t)
	spool := t.TempDir()
	st := open(t, srv, spool, &ends{})
	r := newRecording(t, spool, "2026/12/01/s3.cast.zst")
	st.Started(r.path)
	r.output(100 << 10)
	sum := r.close()
	read := func() (string, int64, error) {
		f, err := st.FS().Open(r.name)
		if err != nil {
			return "", 0, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return "", 0, err
		}
		h, n, err := digest(f)
		if err == nil && n != fi.Size() {
			t.Errorf("Stat says %d bytes, read %d", fi.Size(), n)
		}
		return h, n, err
	}
	if h, n, err := read(); err != nil || h != sum.SHA256 || n != sum.Size {
		t.Fatalf("read from the spool: %s %d %v, want %s %d", h, n, err, sum.SHA256, sum.Size)
	}
	st.Ended(r.path, sum.SHA256, sum.Size)
	testkit.WaitFor(t, 20*time.Second, "upload", gone(r.path))
	if h, n, err := read(); err != nil || h != sum.SHA256 || n != sum.Size {
		t.Fatalf("read from the object store: %s %d %v, want %s %d", h, n, err, sum.SHA256, sum.Size)
	}
	if _, err := st.FS().Open("2026/12/01/none.cast.zst"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a missing recording: %v, want fs.ErrNotExist", err)
	}
	if _, err := st.FS().Open("../x"); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("open of ../x: %v, want fs.ErrInvalid", err)
	}
}

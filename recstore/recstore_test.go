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

func TestSpoolAlteredAfterUploadIsParked(t *testing.T) {
	srv := s3test.Start(t)
	spool := t.TempDir()
	e := &ends{}
	// Both were stored and confirmed by an earlier run that crashed before
	// removing the spool file; one spool file was altered since, its size
	// kept.
	names := []string{"2026/12/01/altered.cast.zst", "2026/12/01/same.cast.zst"}
	sums := map[string]sessionlog.Summary{}
	mods := map[string]time.Time{}
	srv.Env(t)
	for _, name := range names {
		r := newRecording(t, spool, name)
		r.output(64 << 10)
		sums[name] = r.close()
		e.set(name, SessionEnd{Ended: true, SHA256: sums[name].SHA256, Size: sums[name].Size})
		if _, err := srv.Client().FPutObject(context.Background(), s3test.Bucket, "rec/"+name, r.path, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		info, err := srv.Client().StatObject(context.Background(), s3test.Bucket, "rec/"+name, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mods[name] = info.LastModified
	}
	altered := filepath.Join(spool, filepath.FromSlash(names[0]))
	f, err := os.OpenFile(altered, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XXXX"), 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	time.Sleep(1100 * time.Millisecond) // an overwrite would show in LastModified
	st := open(t, srv, spool, e)
	testkit.WaitFor(t, 20*time.Second, "the unaltered spool file confirmed and removed", gone(filepath.Join(spool, names[1])))
	testkit.WaitFor(t, 10*time.Second, "the altered one parked", func() bool { return st.Backlog().Parked == 1 })
	time.Sleep(500 * time.Millisecond) // several retry periods
	if b := st.Backlog(); b.Files != 1 || b.Parked != 1 {
		t.Fatalf("backlog = %+v, want the one parked file", b)
	}
	if _, err := os.Stat(altered); err != nil {
		t.Fatalf("the altered spool file must stay: %v", err)
	}
	for _, name := range names {
		if got, n := object(t, srv, "rec/"+name); got != sums[name].SHA256 || n != sums[name].Size {
			t.Errorf("%s: object SHA-256 %s over %d bytes, want the good %s over %d", name, got, n, sums[name].SHA256, sums[name].Size)
		}
		info, err := srv.Client().StatObject(context.Background(), s3test.Bucket, "rec/"+name, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !info.LastModified.Equal(mods[name]) {
			t.Errorf("%s: object rewritten (modified %v, was %v)", name, info.LastModified, mods[name])
		}
	}
}

func TestPartSize(t *testing.T) {
	const base = MinPartSize
	for _, c := range []struct {
		sent, size, want int64
	}{
		{0, 0, base},
		{0, 1 << 30, base},
		{5 << 30, 5 << 30, base * 1024 / 1000},
		{0, 100 << 30, (100<<30 + 8999) / 9000},
		{1 << 30, 100 << 30, (100<<30 + 8999) / 9000},
		{40 << 30, 100 << 30, (40 << 30) / 1000},
		{1 << 40, 1 << 40, (1 << 40) / 1000},
	} {
		if got := partSize(base, c.sent, c.size); got != c.want {
			t.Errorf("partSize(%d, %d, %d) = %d, want %d", base, c.sent, c.size, got, c.want)
		}
	}
	// A recording growing to 5 TiB (S3's largest object), sent as it grows
	// or all at its end, fits in S3's 10,000 parts, none over 5 GiB.
	for _, grow := range []bool{true, false} {
		const total = 5 << 40
		var sent int64
		parts := 0
		for sent < total {
			size := int64(total)
			if grow {
				size = min(total, sent+2*partSize(base, sent, sent))
			}
			n := min(partSize(base, sent, size), total-sent)
			if n > 5<<30 {
				t.Fatalf("part %d is %d bytes, over 5 GiB", parts+1, n)
			}
			sent += n
			parts++
		}
		if parts > 10000 {
			t.Errorf("grow %v: 5 TiB took %d parts, over 10,000", grow, parts)
		}
		t.Logf("grow %v: 5 TiB in %d parts", grow, parts)
	}
}

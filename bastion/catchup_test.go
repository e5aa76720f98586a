package bastion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// writeTestRecording records a session of text lines, colour escapes,
// binary output, input and markers, on a clock that moves in whole
// milliseconds (which the recording stores exactly), and returns the lines
// its Writer gave OnLine: what a live indexer would have received.
func writeTestRecording(t *testing.T, path string, lines int) []sessionlog.Line {
	t.Helper()
	var mu sync.Mutex
	var live []sessionlog.Line
	var tick atomic.Int64
	base := time.Unix(1_700_000_000, 0)
	w, err := sessionlog.Create(path, sessionlog.Header{Width: 80, Height: 24}, sessionlog.WriterOptions{
		Clock: func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Millisecond) },
		OnLine: func(l sessionlog.Line) {
			mu.Lock()
			live = append(live, l)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var chunk strings.Builder
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&chunk, "\x1b[32mline %d\x1b[0m of the log\r\n", i)
		if i%997 == 0 {
			// A line split across writes, binary output, input and a
			// marker between text writes.
			chunk.WriteString("split ")
			must(t, w.Output([]byte(chunk.String())))
			chunk.Reset()
			must(t, w.Output(make([]byte, 300)))
			must(t, w.Input([]byte("typed "+strconv.Itoa(i)+"\r")))
			must(t, w.Marker("marker "+strconv.Itoa(i)))
		}
		if chunk.Len() > 20000 {
			must(t, w.Output([]byte(chunk.String())))
			chunk.Reset()
		}
	}
	must(t, w.Output([]byte(chunk.String()+"a last line without its newline")))
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return live
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// catchUpServer is the part of a Server that CatchUpIndex uses.
func catchUpServer(b Backend) *Server {
	return &Server{cfg: Config{Backend: b}, log: slog.New(slog.DiscardHandler), encoders: sessionlog.NewEncoderPool(1), catchups: newCatchUps()}
}

// TestCatchUpIndexResumes: a catch-up that stops in the middle (the store
// fails, as when jitd stops) keeps its position, and another Server (jitd
// after a restart) resumes from it; in the end the index holds exactly the
// lines the live indexer would have had, each once, in order.
func TestCatchUpIndexResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s1.cast")
	live := writeTestRecording(t, path, 20000)
	if len(live) < 20000 {
		t.Fatalf("recording gave %d lines, want at least 20000", len(live))
	}
	const indexedLive = 5000 // what the session's own indexer stored
	b := &testBackend{index: map[string][]sessionlog.Line{"s1": append([]sessionlog.Line(nil), live[:indexedLive]...)}}
	b.indexFail = 3
	err := catchUpServer(b).CatchUpIndex(context.Background(), "s1", path, indexedLive)
	if err == nil || !strings.Contains(err.Error(), "audit store closed") {
		t.Fatalf("first catch-up: err = %v, want the store's failure", err)
	}
	b.mu.Lock()
	pos, ok := b.pending["s1"]
	b.indexFail, b.indexCalls = 0, 0
	b.mu.Unlock()
	if !ok || pos <= indexedLive || pos >= int64(len(live)) {
		t.Fatalf("position after the stop = %d (stored %v), want between %d and %d", pos, ok, indexedLive, len(live))
	}
	if err := catchUpServer(b).CatchUpIndex(context.Background(), "s1", path, pos); err != nil {
		t.Fatalf("resumed catch-up: %v", err)
	}
	if !b.caughtUp["s1"] {
		t.Error("the resumed catch-up did not clear the position")
	}
	got := b.index["s1"]
	if len(got) != len(live) {
		t.Fatalf("index holds %d lines, want the %d the session had", len(got), len(live))
	}
	for i := range live {
		if !reflect.DeepEqual(got[i], live[i]) {
			t.Fatalf("line %d indexed as %+v, want %+v", i, got[i], live[i])
		}
	}
}

// TestCatchUpIndexSkipsLiveSession: CatchUpIndex leaves alone a session
// whose indexer runs in this Server, which will catch up itself.
func TestCatchUpIndexSkipsLiveSession(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s1.cast")
	writeTestRecording(t, path, 10)
	b := &testBackend{index: map[string][]sessionlog.Line{}}
	s := catchUpServer(b)
	s.catchups.claim("s1")
	if err := s.CatchUpIndex(context.Background(), "s1", path, 0); err != nil {
		t.Fatal(err)
	}
	if n := len(b.index["s1"]); n != 0 || b.indexCalls != 0 {
		t.Fatalf("indexed %d lines in %d calls for a live session, want none", n, b.indexCalls)
	}
	s.catchups.release("s1")
	if err := s.CatchUpIndex(context.Background(), "s1", path, 0); err != nil {
		t.Fatal(err)
	}
	if n := len(b.index["s1"]); n == 0 || !b.caughtUp["s1"] {
		t.Fatalf("after the session: %d lines indexed, caught up %v", n, b.caughtUp["s1"])
	}
}

// TestCatchUpIndexBadRecording: a recording that cannot be read is an
// error naming it, and the position stays for the next try.
func TestCatchUpIndexBadRecording(t *testing.T) {
	b := &testBackend{index: map[string][]sessionlog.Line{}}
	missing := filepath.Join(t.TempDir(), "gone.cast")
	err := catchUpServer(b).CatchUpIndex(context.Background(), "s1", missing, 3)
	if err == nil || !strings.Contains(err.Error(), "gone.cast") {
		t.Fatalf("err = %v, want one naming the recording", err)
	}
	if b.caughtUp["s1"] {
		t.Fatal("a failed catch-up cleared the position")
	}
}

// TestIndexBehindCatchesUp: a burst of text while the store's IndexText is
// blocked. The session is forwarded to its end while the indexer waits (the
// copy loop never waits for the index), and once the store moves again
// every line ends up indexed exactly once: the lines past the indexer's
// bound are read back from the recording.
func TestIndexBehindCatchesUp(t *testing.T) {
	e := newEnv(t, envOptions{})
	gate := make(chan struct{})
	e.backend.mu.Lock()
	e.backend.indexGate = gate
	e.backend.mu.Unlock()
	opened := false
	open := func() {
		if !opened {
			opened = true
			close(gate)
		}
	}
	t.Cleanup(open)
	key, _, _ := e.userCert(t, certSpec{name: "burst", principal: e.login + "@db1", validFor: time.Hour, register: true})
	const n = 3 * indexMaxPending
	out, errOut, code := run(t, e.ssh(key, e.login+"@db1", "seq 1 "+strconv.Itoa(n)), "")
	if code != 0 {
		t.Fatalf("ssh exit %d: %s", code, errOut)
	}
	if got := strings.Count(out, "\n"); got != n || !strings.HasSuffix(out, "\n"+strconv.Itoa(n)+"\n") {
		t.Fatalf("client received %d lines (ending %q), want %d", got, out[max(0, len(out)-20):], n)
	}
	// Every line has reached the recording (and so the indexer, which
	// takes no more after its bound) while the store is still blocked.
	waitRecorded(t, e.recDir, strconv.Itoa(n)+"\n")
	e.backend.mu.Lock()
	held, indexed := e.backend.indexWaiting, len(e.backend.index)
	e.backend.mu.Unlock()
	if held == 0 || indexed != 0 {
		t.Fatalf("after the session's output: %d index calls held, %d sessions indexed; want the store blocked throughout", held, indexed)
	}
	open()
	rec := e.backend.waitEnded(t, 1)[0]
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.backend.mu.Lock()
		done := e.backend.caughtUp[rec.ID]
		e.backend.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("catch-up did not finish in 30 s: pending %v, caught up %v, %d lines indexed", e.backend.pending, e.backend.caughtUp, len(e.backend.index[rec.ID]))
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.backend.mu.Lock()
	lines := append([]sessionlog.Line(nil), e.backend.index[rec.ID]...)
	e.backend.mu.Unlock()
	seen := make(map[string]int, n)
	for _, l := range lines {
		if l.Kind == sessionlog.CodeOutput {
			seen[l.Text]++
		}
	}
	for i := 1; i <= n; i++ {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Fatalf("line %d indexed %d times, want once (%d lines indexed in all)", i, c, len(lines))
		}
	}
}

// waitRecorded waits (at most 30 s) until the one recording under dir
// holds s.
func waitRecorded(t *testing.T, dir, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Recordings are zstd frames (.cast.zst); a frame is readable once
		// it is flushed, so the text is looked for in the decoded output.
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*", "*.cast*"))
		if len(files) == 1 && strings.Contains(recordedOutput(files[0]), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recording under %s holds %q after 30 s (%d files)", dir, s, len(files))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordedOutput is the output the recording at path holds so far (its
// complete frames), or "" if it cannot be read yet.
func recordedOutput(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	rec, err := sessionlog.ReadAll(f)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range rec.Events {
		if e.Code == sessionlog.CodeOutput {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

// downBackend is a testBackend whose IndexText and IndexPending fail while
// down is set: an audit store that is unreachable for a while.
type downBackend struct {
	*testBackend
	down  atomic.Bool
	fails atomic.Int64
}

func (b *downBackend) IndexText(ctx context.Context, id string, lines []sessionlog.Line) error {
	if b.down.Load() {
		b.fails.Add(1)
		return errors.New("audit store unreachable")
	}
	return b.testBackend.IndexText(ctx, id, lines)
}

func (b *downBackend) IndexPending(ctx context.Context, id string, lines []sessionlog.Line, next int64, done bool) error {
	if b.down.Load() {
		b.fails.Add(1)
		return errors.New("audit store unreachable")
	}
	return b.testBackend.IndexPending(ctx, id, lines, next, done)
}

// TestIndexStoreDownUntilSessionEnd: the store fails from the middle of the
// session until after its end, so that neither a flush, the final flush
// nor the first catch-up stores the catch-up position. Once the store is
// back the catch-up, retried, indexes every line, each once, in order.
func TestIndexStoreDownUntilSessionEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s1.cast")
	live := writeTestRecording(t, path, 6000)
	b := &downBackend{testBackend: &testBackend{index: map[string][]sessionlog.Line{}}}
	s := catchUpServer(b)
	t.Cleanup(s.catchups.stop)
	ix := newIndexer(s, "s1", path)
	const first = 100
	for _, l := range live[:first] {
		ix.add(l)
	}
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after %v", what, d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	indexed := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.index["s1"])
	}
	waitFor("the first lines indexed live", 5*time.Second, func() bool { return indexed() == first })
	b.down.Store(true)
	for _, l := range live[first:] {
		ix.add(l)
	}
	waitFor("a failed flush", 5*time.Second, func() bool { return b.fails.Load() >= 1 })
	ix.stop()
	waitFor("the final flush and the catch-up failing", 5*time.Second, func() bool { return b.fails.Load() >= 3 })
	b.mu.Lock()
	_, stored := b.pending["s1"]
	b.mu.Unlock()
	if stored {
		t.Fatal("a position was stored while the store was down")
	}
	b.down.Store(false)
	waitFor("the catch-up, retried once the store is back", 20*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.caughtUp["s1"]
	})
	<-ix.done
	b.mu.Lock()
	got := append([]sessionlog.Line(nil), b.index["s1"]...)
	b.mu.Unlock()
	if len(got) != len(live) {
		t.Fatalf("index holds %d lines, want the %d the session had", len(got), len(live))
	}
	for i := range live {
		if !reflect.DeepEqual(got[i], live[i]) {
			t.Fatalf("line %d indexed as %+v, want %+v", i, got[i], live[i])
		}
	}
}

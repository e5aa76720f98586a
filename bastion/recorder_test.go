package bastion

import (
	"bytes"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jitssh/jitssh/sessionlog"
)

// TestRecordingWriter: what the copy loop writes is counted, scanned,
// recorded under the stream's code when recording is on, and forwarded
// unchanged; the recording holds exactly the events the test expects.
func TestRecordingWriter(t *testing.T) {
	tests := []struct {
		name   string
		code   string
		record bool
		scan   scanner
		chunks []string
		want   []sessionlog.Event // Time ignored; Data concatenated
	}{
		{name: "output recorded", code: sessionlog.CodeOutput, record: true, chunks: []string{"$ ls\r\n", "a b\r\n"},
			want: []sessionlog.Event{{Code: sessionlog.CodeOutput, Data: "$ ls\r\n"}, {Code: sessionlog.CodeOutput, Data: "a b\r\n"}}},
		{name: "input recorded", code: sessionlog.CodeInput, record: true, chunks: []string{"ls\r"},
			want: []sessionlog.Event{{Code: sessionlog.CodeInput, Data: "ls\r"}}},
		{name: "not recorded", code: sessionlog.CodeInput, record: false, chunks: []string{"secret\r"}},
		{name: "transfer scanned, not recorded", code: sessionlog.CodeInput, record: false, scan: &scpParser{},
			chunks: []string{"C0644 5 a.txt\n", "hello\x00"},
			want:   []sessionlog.Event{{Code: sessionlog.CodeMarker, Data: "scp file a.txt (5 bytes, mode 0644)"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var file, dst bytes.Buffer
			r := &recorder{log: slog.New(slog.DiscardHandler), clock: time.Now, end: func(error) { t.Error("session ended") }}
			w, err := sessionlog.NewWriter(&file, sessionlog.Header{Version: 2, Width: 80, Height: 24}, r.writerOptions(nil))
			if err != nil {
				t.Fatal(err)
			}
			r.attach("s1", w, nil)
			var count atomic.Int64
			rw := &recordingWriter{dst: &dst, rec: r, code: tc.code, record: tc.record, count: &count, scan: tc.scan}
			if _, err := io.Copy(rw, strings.NewReader(strings.Join(tc.chunks, ""))); err != nil {
				t.Fatal(err)
			}
			if _, _, err := r.close(); err != nil {
				t.Fatal(err)
			}
			all := strings.Join(tc.chunks, "")
			if dst.String() != all || count.Load() != int64(len(all)) {
				t.Fatalf("forwarded %q, counted %d; want %q, %d", dst.String(), count.Load(), all, len(all))
			}
			rec, err := sessionlog.ReadAll(&file)
			if err != nil {
				t.Fatal(err)
			}
			// The Writer may merge or split text chunks; compare the data
			// and the sequence of codes, not the chunking.
			var text, wantText string
			for _, e := range rec.Events {
				text += e.Data
			}
			for _, e := range tc.want {
				wantText += e.Data
			}
			if text != wantText || !sameCodes(rec.Events, tc.want) {
				t.Fatalf("recorded %+v, want %+v", rec.Events, tc.want)
			}
		})
	}
}

// sameCodes reports whether got and want have the same sequence of distinct
// consecutive event codes.
func sameCodes(got, want []sessionlog.Event) bool {
	codes := func(es []sessionlog.Event) []string {
		var out []string
		for _, e := range es {
			if len(out) == 0 || out[len(out)-1] != e.Code {
				out = append(out, e.Code)
			}
		}
		return out
	}
	return slices.Equal(codes(got), codes(want))
}

// TestRecordingWriterRefusesUnrecorded: once the recording has failed,
// nothing more is forwarded and the session is ended (record or refuse).
func TestRecordingWriterRefusesUnrecorded(t *testing.T) {
	ended := make(chan error, 1)
	r := &recorder{log: slog.New(slog.DiscardHandler), clock: time.Now, end: func(err error) { ended <- err }}
	w, err := sessionlog.NewWriter(&failAfter{n: 1}, sessionlog.Header{Version: 2, Width: 80, Height: 24}, r.writerOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r.attach("s1", w, nil)
	var dst bytes.Buffer
	var count atomic.Int64
	rw := &recordingWriter{dst: &dst, rec: r, code: sessionlog.CodeOutput, record: true, count: &count}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := rw.Write(bytes.Repeat([]byte("x"), 64<<10)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes still forwarded after the recording failed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	n := dst.Len()
	if _, err := rw.Write([]byte("more")); err == nil || dst.Len() != n {
		t.Fatalf("write after failure: err %v, forwarded %d more bytes", err, dst.Len()-n)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("session not ended")
	}
}

// stuckDisk is a recording destination whose writes after the header wait
// until open is closed: a slow or hung disk.
type stuckDisk struct {
	mu     sync.Mutex
	header bool
	open   chan struct{}
	buf    bytes.Buffer
}

func (d *stuckDisk) Write(p []byte) (int, error) {
	d.mu.Lock()
	first := !d.header
	d.header = true
	d.mu.Unlock()
	if !first {
		<-d.open
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.Write(p)
}

// TestKeystrokeForwardedWhileRecordingStuck: while the session's recording
// (its encoder in a pool of one slot) is stuck on a slow disk behind a
// burst of output, a keystroke's echo is still recorded and forwarded at
// once; once the disk moves it is in the recording.
func TestKeystrokeForwardedWhileRecordingStuck(t *testing.T) {
	pool := sessionlog.NewEncoderPool(1)
	disk := &stuckDisk{open: make(chan struct{})}
	r := &recorder{log: slog.New(slog.DiscardHandler), clock: time.Now, pool: pool, end: func(error) { t.Error("session ended") }}
	w, err := sessionlog.NewWriter(disk, sessionlog.Header{Version: 2, Width: 80, Height: 24}, r.writerOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	r.attach("s1", w, nil)
	var dst bytes.Buffer
	var count atomic.Int64
	rw := &recordingWriter{dst: &dst, rec: r, code: sessionlog.CodeOutput, record: true, count: &count}
	if _, err := rw.Write(bytes.Repeat([]byte("a log line of a busy stream\r\n"), 8<<10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the encoder is stuck in the disk's Write
	n := dst.Len()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := rw.Write([]byte("k"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a keystroke's echo waited for the stuck recording")
	}
	if d := time.Since(start); d > 500*time.Millisecond || dst.Len() != n+1 {
		t.Errorf("echo forwarded after %v, %d bytes; want at once, 1 byte", d, dst.Len()-n)
	}
	close(disk.open)
	if _, _, err := r.close(); err != nil {
		t.Fatal(err)
	}
	rec, err := sessionlog.ReadAll(&disk.buf)
	if err != nil {
		t.Fatal(err)
	}
	if last := rec.Events[len(rec.Events)-1]; last.Data != "k" {
		t.Errorf("last recorded event %+v, want the keystroke's echo", last)
	}
}

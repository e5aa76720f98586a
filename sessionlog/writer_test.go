package sessionlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// step is one action of a scripted recording.
type step struct {
	at     time.Duration
	output string
	input  string
	resize [2]int
	marker string
	isMark bool
}

// demoHeader is the header of the golden recording.
func demoHeader() Header {
	return Header{
		Width: 80, Height: 24, Timestamp: 1767323045, Title: "demo",
		Env:       map[string]string{"TERM": "xterm-256color", "SHELL": "/bin/bash"},
		SessionID: "s-0001", RequestID: "r-0001", User: "alice", Login: "root", Host: "web1",
	}
}

// demoSteps is the script of the golden recording: prompt, typed command,
// coloured output, a resize, a marker, a character split between two reads,
// an OSC title and the end of the session.
func demoSteps() []step {
	return []step{
		{at: 100 * time.Millisecond, output: "$ "},
		{at: 500 * time.Millisecond, input: "ls\r"},
		{at: 500 * time.Millisecond, output: "ls\r\n"},
		{at: 600 * time.Millisecond, output: "\x1b[1;34mdir\x1b[0m  file.txt\r\n$ "},
		{at: 1250 * time.Millisecond, resize: [2]int{100, 30}},
		{at: 2 * time.Second, isMark: true, marker: "checkpoint"},
		{at: 2500 * time.Millisecond, output: "echo h\xc3"},
		{at: 2500*time.Millisecond + 1, output: "\xa9llo \xe2\x82"},
		{at: 2600 * time.Millisecond, output: "\xac 𝄞\r\nh\u00e9llo \u20ac 𝄞\r\n$ "},
		{at: 3333333 * time.Microsecond, output: "\x1b]0;title\x07printf 'tab\\there'\r\ntab\there\r\n$ "},
		{at: 9 * time.Second, output: "exit\r\n"},
	}
}

// record runs steps against a Writer on dst with a manual clock and closes
// it at closeAt.
func record(t *testing.T, dst *memFile, h Header, steps []step, closeAt time.Duration, opts WriterOptions) Summary {
	t.Helper()
	clock := newManualClock()
	opts.Clock = clock.Now
	w, err := NewWriter(dst, h, opts)
	mustNil(t, err)
	for _, s := range steps {
		clock.at(s.at)
		switch {
		case s.output != "":
			mustNil(t, w.Output([]byte(s.output)))
		case s.input != "":
			mustNil(t, w.Input([]byte(s.input)))
		case s.resize != [2]int{}:
			mustNil(t, w.Resize(s.resize[0], s.resize[1]))
		case s.isMark:
			mustNil(t, w.Marker(s.marker))
		}
	}
	clock.at(closeAt)
	sum, err := w.Close()
	mustNil(t, err)
	return sum
}

func TestWriterGolden(t *testing.T) {
	var f memFile
	sum := record(t, &f, demoHeader(), demoSteps(), 10*time.Second, WriterOptions{})
	got := f.bytes()
	golden(t, "session.cast", got)

	digest := sha256.Sum256(got)
	want := Summary{
		Size: int64(len(got)), SHA256: hex.EncodeToString(digest[:]), Events: 11,
		Duration: 10 * time.Second, BytesOut: 0, BytesIn: 3,
	}
	for _, s := range demoSteps() {
		want.BytesOut += int64(len(s.output))
	}
	if sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	var f memFile
	record(t, &f, demoHeader(), demoSteps(), 10*time.Second, WriterOptions{})
	rec, err := ReadAll(bytes.NewReader(f.bytes()))
	mustNil(t, err)

	wantHeader := demoHeader()
	wantHeader.Version = 2
	if !reflect.DeepEqual(rec.Header, wantHeader) {
		t.Errorf("header = %+v, want %+v", rec.Header, wantHeader)
	}
	if rec.Truncated {
		t.Error("Truncated = true for a cleanly closed recording")
	}
	var out, in strings.Builder
	var markers, resizes []string
	for _, e := range rec.Events {
		switch e.Code {
		case CodeOutput:
			out.WriteString(e.Data)
		case CodeInput:
			in.WriteString(e.Data)
		case CodeMarker:
			markers = append(markers, e.Data)
		case CodeResize:
			resizes = append(resizes, e.Data)
		}
	}
	var wantOut strings.Builder
	for _, s := range demoSteps() {
		wantOut.WriteString(s.output)
	}
	if out.String() != wantOut.String() {
		t.Errorf("output = %q, want %q", out.String(), wantOut.String())
	}
	if in.String() != "ls\r" {
		t.Errorf("input = %q, want %q", in.String(), "ls\r")
	}
	if !reflect.DeepEqual(markers, []string{"checkpoint"}) || !reflect.DeepEqual(resizes, []string{"100x30"}) {
		t.Errorf("markers = %q, resizes = %q", markers, resizes)
	}
	if got := rec.Events[len(rec.Events)-1].Time; got != 9 {
		t.Errorf("last event time = %v, want 9", got)
	}
}

// recordChunks records chunks as output (or input) and returns the events
// a Reader decodes.
func recordChunks(t *testing.T, code string, chunks ...string) []Event {
	t.Helper()
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{Clock: newManualClock().Now})
	mustNil(t, err)
	for _, c := range chunks {
		if code == CodeInput {
			mustNil(t, w.Input([]byte(c)))
		} else {
			mustNil(t, w.Output([]byte(c)))
		}
	}
	_, err = w.Close()
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(f.bytes()))
	mustNil(t, err)
	return rec.Events
}

// writeChunks records chunks of text as output (or input) and returns what
// a Reader decodes as the concatenated data.
func writeChunks(t *testing.T, code string, chunks ...string) string {
	t.Helper()
	var b strings.Builder
	for _, e := range recordChunks(t, code, chunks...) {
		if e.Code != code {
			t.Fatalf("event code %q, want %q", e.Code, code)
		}
		b.WriteString(e.Data)
	}
	return b.String()
}

// joinBytes concatenates what events carried (Event.Bytes) and lists
// their codes.
func joinBytes(t *testing.T, events []Event) (data string, codes []string) {
	t.Helper()
	var b strings.Builder
	for _, e := range events {
		p, err := e.Bytes()
		mustNil(t, err)
		b.Write(p)
		codes = append(codes, e.Code)
	}
	return b.String(), codes
}

func TestWriterSplitUTF8(t *testing.T) {
	const s = "a\u00e9b\u20acc\U0001D11Ed" // 2-, 3- and 4-byte characters
	for _, code := range []string{CodeOutput, CodeInput} {
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s); j++ {
				if got := writeChunks(t, code, s[:i], s[i:j], s[j:]); got != s {
					t.Errorf("%s split at %d,%d: got %q, want %q", code, i, j, got, s)
				}
			}
		}
	}
}

func TestWriterInvalidUTF8(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{name: "invalid byte", chunks: []string{"a\xffb"}, want: "a\ufffdb"},
		{name: "lone continuation", chunks: []string{"a\x80", "b"}, want: "a\ufffdb"},
		{name: "truncated at close", chunks: []string{"a\xe2\x82"}, want: "a\ufffd\ufffd"},
		{name: "interrupted character", chunks: []string{"a\xe2", "\x82", "b"}, want: "a\ufffd\ufffdb"},
		{name: "surrogate half", chunks: []string{"\xed\xa0\x80"}, want: "\ufffd\ufffd\ufffd"},
		{name: "real replacement character kept", chunks: []string{"\xef\xbf", "\xbd"}, want: "\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writeChunks(t, CodeOutput, tt.chunks...); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriterBinary(t *testing.T) {
	zeros := strings.Repeat("\x00", 100<<10)
	tests := []struct {
		name      string
		chunks    []string
		wantCodes []string // per direction: "o"/"bo" become "i"/"bi" for input
		wantData  string   // what Event.Bytes gives back, joined
	}{
		{name: "NULs", chunks: []string{"\x00\x00\x00"}, wantCodes: []string{"bo"}, wantData: "\x00\x00\x00"},
		{name: "one NUL in short text", chunks: []string{"ok\x00"}, wantCodes: []string{"bo"}, wantData: "ok\x00"},
		{name: "short text with an odd control stays text", chunks: []string{"a\x0fb\x0e"}, wantCodes: []string{"o"}, wantData: "a\x0fb\x0e"},
		{
			name:      "many odd controls",
			chunks:    []string{strings.Repeat("\x01\x02abcdefghij", 8)},
			wantCodes: []string{"bo"}, wantData: strings.Repeat("\x01\x02abcdefghij", 8),
		},
		{
			name:      "terminal controls and escapes are text",
			chunks:    []string{strings.Repeat("\x1b[1mok\x1b[0m\a\b\t\r\n", 10)},
			wantCodes: []string{"o"}, wantData: strings.Repeat("\x1b[1mok\x1b[0m\a\b\t\r\n", 10),
		},
		{
			name:      "mostly invalid UTF-8",
			chunks:    []string{strings.Repeat("\xff\xfeabcdef", 10)},
			wantCodes: []string{"bo"}, wantData: strings.Repeat("\xff\xfeabcdef", 10),
		},
		{
			name:      "a stray invalid byte in long text stays text",
			chunks:    []string{strings.Repeat("abcdefgh", 10) + "\xff"},
			wantCodes: []string{"o"}, wantData: strings.Repeat("abcdefgh", 10) + "\ufffd",
		},
		{
			name:      "text, binary, text",
			chunks:    []string{"$ head -c 3 /dev/zero\r\n", "\x00\x00\x00", "$ "},
			wantCodes: []string{"o", "bo", "o"}, wantData: "$ head -c 3 /dev/zero\r\n\x00\x00\x00$ ",
		},
		{
			name:      "split characters around binary data",
			chunks:    []string{"a\xc3", "\xa9\x00\xe2\x82", "\xacb"},
			wantCodes: []string{"o", "bo", "o"}, wantData: "a\u00e9\x00\u20acb",
		},
		{
			name:      "split character at the end of binary data kept exactly at close",
			chunks:    []string{"\x00\xe2\x82"},
			wantCodes: []string{"bo", "bo"}, wantData: "\x00\xe2\x82",
		},
		{
			name:      "large binary output split into events",
			chunks:    []string{zeros},
			wantCodes: []string{"bo", "bo", "bo", "bo"}, wantData: zeros,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, code := range []string{CodeOutput, CodeInput} {
				data, codes := joinBytes(t, recordChunks(t, code, tt.chunks...))
				want := tt.wantCodes
				if code == CodeInput {
					want = nil
					for _, c := range tt.wantCodes {
						want = append(want, strings.Replace(c, "o", "i", 1))
					}
				}
				if !reflect.DeepEqual(codes, want) {
					t.Errorf("%s: codes %q, want %q", code, codes, want)
				}
				if data != tt.wantData {
					t.Errorf("%s: data %q, want %q", code, truncate(data), truncate(tt.wantData))
				}
			}
		})
	}
}

// truncate shortens long test data in messages.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// TestWriterBinaryNotIndexed: OnLine sees the text around binary output,
// never the binary data, and the summary counts every byte.
func TestWriterBinaryNotIndexed(t *testing.T) {
	var got []Line
	var f memFile
	steps := []step{
		{at: 0, output: "$ cat blob\r\n"},
		{at: time.Millisecond, output: "\x00\x01secret-looking\x02\r\n"},
		{at: 2 * time.Millisecond, output: "$ "},
	}
	sum := record(t, &f, Header{Width: 80, Height: 24}, steps, time.Second,
		WriterOptions{OnLine: func(l Line) { got = append(got, l) }})
	want := []Line{
		{Offset: 0, Kind: "o", Text: "$ cat blob"},
		{Offset: 2 * time.Millisecond, Kind: "o", Text: "$"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines = %+v, want %+v", got, want)
	}
	if n := int64(len(steps[0].output) + len(steps[1].output) + len(steps[2].output)); sum.BytesOut != n {
		t.Errorf("BytesOut = %d, want %d", sum.BytesOut, n)
	}
}

// gatedFile is a destination whose writes wait until open is closed.
type gatedFile struct {
	open chan struct{}
	memFile
}

func (g *gatedFile) Write(p []byte) (int, error) {
	<-g.open
	return g.memFile.Write(p)
}

// TestWriterBackPressure: while the destination is stuck, callers block
// once the queue is full instead of dropping anything; when it moves again
// every byte arrives.
func TestWriterBackPressure(t *testing.T) {
	g := &gatedFile{open: make(chan struct{})}
	close(g.open) // the header goes through
	w, err := NewWriter(g, Header{Width: 80, Height: 24}, WriterOptions{QueueSize: 64 << 10})
	mustNil(t, err)
	g.open = make(chan struct{})
	chunk := bytes.Repeat([]byte{0, 1, 2, 3}, 8<<10) // 32 KiB of binary output
	const chunks = 32
	var mu sync.Mutex
	done := 0
	finished := make(chan error, 1)
	go func() {
		for i := 0; i < chunks; i++ {
			if err := w.Output(chunk); err != nil {
				finished <- err
				return
			}
			mu.Lock()
			done++
			mu.Unlock()
		}
		finished <- nil
	}()
	// The encoder fills its 64 KiB write buffer and blocks in Write; the
	// queue then takes about 64 KiB more.
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	blockedAt := done
	mu.Unlock()
	if blockedAt >= chunks || blockedAt > 8 {
		t.Errorf("%d of %d outputs returned while the destination was stuck; want back-pressure", blockedAt, chunks)
	}
	close(g.open)
	select {
	case err := <-finished:
		mustNil(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("outputs still blocked after the destination moved again")
	}
	sum, err := w.Close()
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(g.bytes()))
	mustNil(t, err)
	data, _ := joinBytes(t, rec.Events)
	if want := strings.Repeat(string(chunk), chunks); data != want {
		t.Errorf("recorded %d bytes, want %d", len(data), len(want))
	}
	if sum.BytesOut != chunks*int64(len(chunk)) {
		t.Errorf("BytesOut = %d", sum.BytesOut)
	}
}

// TestWriterFailureWakesBlockedCallers: a write error while callers wait
// for queue space returns the error to them rather than leaving them
// blocked.
func TestWriterFailureWakesBlockedCallers(t *testing.T) {
	f := &memFile{limit: 100 << 10, writeErr: syscall.ENOSPC}
	w, err := NewWriter(f, Header{Width: 80, Height: 24}, WriterOptions{QueueSize: 32 << 10})
	mustNil(t, err)
	chunk := bytes.Repeat([]byte{0}, 32<<10)
	finished := make(chan error, 1)
	go func() {
		for i := 0; i < 1000; i++ {
			if err := w.Output(chunk); err != nil {
				finished <- err
				return
			}
		}
		finished <- nil
	}()
	select {
	case err := <-finished:
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Output = %v, want ENOSPC", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Output still blocked after the write error")
	}
	if _, err := w.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close = %v, want ENOSPC", err)
	}
}

func TestWriterSeparateCarries(t *testing.T) {
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{Clock: newManualClock().Now})
	mustNil(t, err)
	mustNil(t, w.Output([]byte("o\xc3")))
	mustNil(t, w.Input([]byte("i\xe2\x82")))
	mustNil(t, w.Output([]byte("\xa9")))
	mustNil(t, w.Input([]byte("\xac")))
	_, err = w.Close()
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(f.bytes()))
	mustNil(t, err)
	want := []Event{{0, "o", "o"}, {0, "i", "i"}, {0, "o", "\u00e9"}, {0, "i", "\u20ac"}}
	if !reflect.DeepEqual(rec.Events, want) {
		t.Errorf("events = %+v, want %+v", rec.Events, want)
	}
}

func TestWriterLargeOutputSplitsEvents(t *testing.T) {
	big := strings.Repeat("\u20ac", maxEventData) // 3 bytes each: never cut on a boundary by chance
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{Clock: newManualClock().Now})
	mustNil(t, err)
	mustNil(t, w.Output([]byte(big)))
	sum, err := w.Close()
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(f.bytes()))
	mustNil(t, err)
	var got strings.Builder
	for _, e := range rec.Events {
		if len(e.Data) > maxEventData {
			t.Errorf("event of %d bytes, want at most %d", len(e.Data), maxEventData)
		}
		got.WriteString(e.Data)
	}
	if got.String() != big {
		t.Error("split output does not join back to the original")
	}
	if sum.Events != int64(len(rec.Events)) || sum.Events < 3 {
		t.Errorf("summary events = %d, read %d", sum.Events, len(rec.Events))
	}
}

func TestWriterOnLine(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		steps []step
		want  []Line
	}{
		{
			name: "output lines with escapes stripped and partial line at close",
			steps: []step{
				{at: 0, output: "$ l"},
				{at: 10 * ms, output: "s\r\n\x1b[3"},
				{at: 20 * ms, output: "4mdir\x1b[0m  f\r\n\r\n"},
				{at: 30 * ms, output: "$ "},
			},
			want: []Line{
				{Offset: 0, Kind: "o", Text: "$ ls"},
				{Offset: 20 * ms, Kind: "o", Text: "dir  f"},
				{Offset: 30 * ms, Kind: "o", Text: "$"},
			},
		},
		{
			name: "input lines end at enter and apply deletes",
			steps: []step{
				{at: 0, input: "lx\x7fs -"},
				{at: 5 * ms, input: "l\r"},
				{at: 6 * ms, input: "secret\x03"},
				{at: 7 * ms, input: "pwd\x1b[D\x1b[Dx\r"},
			},
			want: []Line{
				{Offset: 0, Kind: "i", Text: "ls -l"},
				{Offset: 7 * ms, Kind: "i", Text: "pxwd"},
			},
		},
		{
			name: "markers",
			steps: []step{
				{at: 40 * ms, isMark: true, marker: "deploy start"},
			},
			want: []Line{{Offset: 40 * ms, Kind: "m", Text: "deploy start"}},
		},
		{
			name: "carriage return overwrites",
			steps: []step{
				{at: 0, output: "progress 10%\rprogress 100%\r\n"},
			},
			want: []Line{{Offset: 0, Kind: "o", Text: "progress 100%"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Line
			var f memFile
			record(t, &f, Header{Width: 80, Height: 24}, tt.steps, time.Second,
				WriterOptions{OnLine: func(l Line) { got = append(got, l) }})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lines = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWriterPeriodicSync(t *testing.T) {
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{SyncInterval: 2 * time.Millisecond})
	mustNil(t, err)
	if n := f.syncCount(); n != 1 {
		t.Errorf("syncs after header = %d, want 1", n)
	}
	mustNil(t, w.Output([]byte("hello")))
	waitFor(t, "periodic sync", func() bool { return f.syncCount() >= 2 })
	if !bytes.Contains(f.bytes(), []byte(`"hello"`)) {
		t.Error("event not flushed to the destination before the sync")
	}
	// Nothing new to write: no more syncs.
	n := f.syncCount()
	time.Sleep(20 * time.Millisecond)
	if m := f.syncCount(); m != n {
		t.Errorf("syncs went from %d to %d with nothing written", n, m)
	}
	_, err = w.Close()
	mustNil(t, err)
}

func TestWriterStickyError(t *testing.T) {
	tests := []struct {
		name    string
		file    *memFile
		trigger func(w *Writer)
		want    error
	}{
		{
			name: "disk full on a large write",
			file: &memFile{limit: 4096, writeErr: syscall.ENOSPC},
			trigger: func(w *Writer) {
				_ = w.Output(bytes.Repeat([]byte("x"), 128<<10))
				waitFor(t, "write error", func() bool { return w.Err() != nil })
			},
			want: syscall.ENOSPC,
		},
		{
			name: "disk full on the periodic flush",
			file: &memFile{limit: 4096, writeErr: syscall.ENOSPC},
			trigger: func(w *Writer) {
				_ = w.Output(bytes.Repeat([]byte("x"), 8<<10))
				waitFor(t, "flush error", func() bool { return w.Err() != nil })
			},
			want: syscall.ENOSPC,
		},
		{
			name: "sync fails",
			file: &memFile{syncErr: syscall.EIO, syncsLeft: 1},
			trigger: func(w *Writer) {
				_ = w.Output([]byte("x"))
				waitFor(t, "sync error", func() bool { return w.Err() != nil })
			},
			want: syscall.EIO,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var reported []error
			w, err := NewWriter(tt.file, Header{Width: 80, Height: 24}, WriterOptions{
				SyncInterval: time.Millisecond,
				OnError: func(err error) {
					mu.Lock()
					reported = append(reported, err)
					mu.Unlock()
				},
			})
			mustNil(t, err)
			tt.trigger(w)
			calls := map[string]error{
				"Err":    w.Err(),
				"Output": w.Output([]byte("more")),
				"Input":  w.Input([]byte("more")),
				"Resize": w.Resize(10, 10),
				"Marker": w.Marker("m"),
			}
			_, calls["Close"] = w.Close()
			for name, err := range calls {
				if !errors.Is(err, tt.want) {
					t.Errorf("%s() = %v, want %v", name, err, tt.want)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reported) != 1 || !errors.Is(reported[0], tt.want) {
				t.Errorf("OnError got %v, want one %v", reported, tt.want)
			}
		})
	}
}

func TestWriterClosed(t *testing.T) {
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{})
	mustNil(t, err)
	first, err := w.Close()
	mustNil(t, err)
	second, err := w.Close()
	if err != nil || second != first {
		t.Errorf("second Close = %+v, %v; want %+v, nil", second, err, first)
	}
	if err := w.Output([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Output after Close = %v, want ErrClosed", err)
	}
	if err := w.Marker("x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Marker after Close = %v, want ErrClosed", err)
	}
}

func TestNewWriterRejects(t *testing.T) {
	tests := []struct {
		name   string
		header Header
		opts   WriterOptions
		want   string
	}{
		{name: "zero width", header: Header{Width: 0, Height: 24}, want: "width 0"},
		{name: "huge height", header: Header{Width: 80, Height: 10001}, want: "height 10001"},
		{name: "version 1", header: Header{Version: 1, Width: 80, Height: 24}, want: "version 1"},
		{name: "negative sync interval", header: Header{Width: 80, Height: 24}, opts: WriterOptions{SyncInterval: -1}, want: "sync interval"},
		{name: "negative queue size", header: Header{Width: 80, Height: 24}, opts: WriterOptions{QueueSize: -1}, want: "queue size -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f memFile
			w, err := NewWriter(&f, tt.header, tt.opts)
			if err == nil {
				_, _ = w.Close()
				t.Fatal("NewWriter succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestWriterResizeRejects(t *testing.T) {
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{})
	mustNil(t, err)
	defer w.Close()
	if err := w.Resize(0, 24); err == nil || !strings.Contains(err.Error(), "0x24") {
		t.Errorf("Resize(0, 24) = %v, want an error naming 0x24", err)
	}
	if err := w.Err(); err != nil {
		t.Errorf("a refused resize made the writer fail: %v", err)
	}
}

func TestWriterConcurrent(t *testing.T) {
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{SyncInterval: time.Millisecond})
	mustNil(t, err)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				tok := fmt.Sprintf("<%d.%d>", g, i)
				switch i % 4 {
				case 0, 1:
					_ = w.Output([]byte(tok))
				case 2:
					_ = w.Input([]byte(tok))
				case 3:
					_ = w.Marker(tok)
				}
			}
		})
	}
	wg.Wait()
	sum, err := w.Close()
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(f.bytes()))
	mustNil(t, err)
	if len(rec.Events) != writers*each || sum.Events != writers*each {
		t.Fatalf("read %d events, summary %d, want %d", len(rec.Events), sum.Events, writers*each)
	}
	seen := map[string]bool{}
	for _, e := range rec.Events {
		seen[e.Data] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct events, want %d", len(seen), writers*each)
	}
}

func TestWriterClockGoesBackwards(t *testing.T) {
	clock := newManualClock()
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{Clock: clock.Now})
	mustNil(t, err)
	clock.at(2 * time.Second)
	mustNil(t, w.Output([]byte("a")))
	clock.at(time.Second)
	mustNil(t, w.Output([]byte("b")))
	_, err = w.Close()
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(f.bytes()))
	mustNil(t, err)
	if rec.Events[1].Time != 2 {
		t.Errorf("second event at %v, want 2 (never before the first)", rec.Events[1].Time)
	}
}

func TestCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.cast")
	w, err := Create(path, Header{Width: 80, Height: 24}, WriterOptions{})
	mustNil(t, err)
	mustNil(t, w.Output([]byte("hi\r\n")))
	sum, err := w.Close()
	mustNil(t, err)

	fi, err := os.Stat(path)
	mustNil(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	mustNil(t, err)
	digest := sha256.Sum256(data)
	if sum.Size != int64(len(data)) || sum.SHA256 != hex.EncodeToString(digest[:]) {
		t.Errorf("summary size %d sha %s; file has %d bytes, sha %x", sum.Size, sum.SHA256, len(data), digest)
	}

	_, err = Create(path, Header{Width: 80, Height: 24}, WriterOptions{})
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file = %v, want fs.ErrExist", err)
	}
	after, err := os.ReadFile(path)
	mustNil(t, err)
	if !bytes.Equal(after, data) {
		t.Error("a refused Create changed the existing recording")
	}
}

func TestCreateReadOnlyDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ro")
	mustNil(t, os.Mkdir(dir, 0o500))
	path := filepath.Join(dir, "s.cast")
	if probe, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		// Root ignores directory permissions; sysfs refuses even root.
		probe.Close()
		path = "/sys/jitssh-sessionlog-test.cast"
	}
	w, err := Create(path, Header{Width: 80, Height: 24}, WriterOptions{})
	if err == nil {
		_, _ = w.Close()
		t.Skipf("created %s: no read-only directory available", path)
	}
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v, want a permission error naming %s", err, path)
	}
	if !strings.HasPrefix(err.Error(), "create recording") {
		t.Errorf("error %q does not say what failed", err)
	}
}

func TestCreateInvalidHeaderLeavesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.cast")
	if _, err := Create(path, Header{Width: 0, Height: 24}, WriterOptions{}); err == nil {
		t.Fatal("Create accepted width 0")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file left behind after a failed Create: %v", err)
	}
}

// TestAsciinemaCat checks that asciinema itself reads what we write.
func TestAsciinemaCat(t *testing.T) {
	bin, err := exec.LookPath("asciinema")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("asciinema is required with CI=true")
		}
		t.Skip("asciinema not installed")
	}
	path := filepath.Join(t.TempDir(), "s.cast")
	w, err := Create(path, demoHeader(), WriterOptions{})
	mustNil(t, err)
	var want strings.Builder
	// Binary output ("bo" events) is skipped by asciinema, as every code
	// it does not know.
	mustNil(t, w.Output([]byte("\x00\x01binary\x00\xff")))
	for _, s := range demoSteps() {
		switch {
		case s.output != "":
			mustNil(t, w.Output([]byte(s.output)))
			want.WriteString(s.output)
		case s.input != "":
			mustNil(t, w.Input([]byte(s.input)))
		case s.resize != [2]int{}:
			mustNil(t, w.Resize(s.resize[0], s.resize[1]))
		case s.isMark:
			mustNil(t, w.Marker(s.marker))
		}
	}
	_, err = w.Close()
	mustNil(t, err)

	// asciinema cat opens /dev/tty, so give it a controlling terminal;
	// its stdout stays a pipe so nothing is translated.
	ptmx, tty, err := pty.Open()
	mustNil(t, err)
	defer ptmx.Close()
	defer tty.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "cat", path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, stderr.String())
	}
	if stdout.String() != want.String() {
		t.Errorf("asciinema cat printed %q, want %q", stdout.String(), want.String())
	}
}

// discardSyncer is a destination that keeps nothing and syncs instantly.
type discardSyncer struct{}

func (discardSyncer) Write(p []byte) (int, error) { return len(p), nil }
func (discardSyncer) Sync() error                 { return nil }

// BenchmarkWriterOutput measures the recording cost the bastion pays per
// read of session output.
func BenchmarkWriterOutput(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 32 << 10} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			chunk := []byte(strings.Repeat("\x1b[32mok\x1b[0m h\u00e9llo\r\n", size/20+1)[:size])
			for _, onLine := range []bool{false, true} {
				b.Run(fmt.Sprintf("online=%v", onLine), func(b *testing.B) {
					opts := WriterOptions{}
					if onLine {
						opts.OnLine = func(Line) {}
					}
					w, err := NewWriter(discardSyncer{}, Header{Width: 80, Height: 24}, opts)
					if err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(size))
					for b.Loop() {
						if err := w.Output(chunk); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := w.Close(); err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	}
}

// BenchmarkWriterBinaryOutput measures the recording cost of output that
// is not text (reads of NUL bytes), which is written as base64 events.
func BenchmarkWriterBinaryOutput(b *testing.B) {
	chunk := make([]byte, 32<<10)
	w, err := NewWriter(discardSyncer{}, Header{Width: 80, Height: 24}, WriterOptions{OnLine: func(Line) {}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if err := w.Output(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

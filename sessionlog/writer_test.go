package sessionlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
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
		at(clock, s.at)
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
	at(clock, closeAt)
	sum, err := w.Close()
	mustNil(t, err)
	return sum
}

// TestWriterGolden records the demo session in both stored formats: plain
// asciicast v2 lines (testdata/session.cast, also what recordings were
// before compression) and zstd frames (testdata/session.cast.zst), whose
// frames decompress to exactly the plain file.
func TestWriterGolden(t *testing.T) {
	for _, tt := range []struct {
		file  string
		plain bool
	}{{"session.cast", true}, {"session.cast.zst", false}} {
		t.Run(tt.file, func(t *testing.T) {
			var f memFile
			sum := record(t, &f, demoHeader(), demoSteps(), 10*time.Second, WriterOptions{Uncompressed: tt.plain})
			got := f.bytes()
			golden(t, tt.file, got)

			plain, err := os.ReadFile(filepath.Join("testdata", "session.cast"))
			mustNil(t, err)
			digest := sha256.Sum256(got)
			want := Summary{
				Size: int64(len(got)), SHA256: hex.EncodeToString(digest[:]), Plain: int64(len(plain)), Events: 11,
				Duration: 10 * time.Second, BytesOut: 0, BytesIn: 3,
			}
			for _, s := range demoSteps() {
				want.BytesOut += int64(len(s.output))
			}
			if sum != want {
				t.Errorf("summary = %+v, want %+v", sum, want)
			}
			if tt.plain == isCompressed(got) {
				t.Errorf("%s: compressed = %v, want %v", tt.file, !tt.plain, !tt.plain)
			}
		})
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
				{Offset: 0, Kind: CodeOutput, Text: "$ ls"},
				{Offset: 20 * ms, Kind: CodeOutput, Text: "dir  f"},
				{Offset: 30 * ms, Kind: CodeOutput, Text: "$"},
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
				{Offset: 0, Kind: CodeInput, Text: "ls -l"},
				{Offset: 7 * ms, Kind: CodeInput, Text: "pxwd"},
			},
		},
		{
			name: "markers",
			steps: []step{
				{at: 40 * ms, isMark: true, marker: "deploy start"},
			},
			want: []Line{{Offset: 40 * ms, Kind: CodeMarker, Text: "deploy start"}},
		},
		{
			name: "carriage return overwrites",
			steps: []step{
				{at: 0, output: "progress 10%\rprogress 100%\r\n"},
			},
			want: []Line{{Offset: 0, Kind: CodeOutput, Text: "progress 100%"}},
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
	at(clock, 2*time.Second)
	mustNil(t, w.Output([]byte("a")))
	at(clock, time.Second)
	mustNil(t, w.Output([]byte("b")))
	_, err = w.Close()
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(f.bytes()))
	mustNil(t, err)
	if rec.Events[1].Time != 2 {
		t.Errorf("second event at %v, want 2 (never before the first)", rec.Events[1].Time)
	}
}

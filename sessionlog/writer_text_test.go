package sessionlog

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

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
		wantCodes []string // output codes; for input each becomes its input counterpart
		wantData  string   // what Event.Bytes gives back, joined
	}{
		{name: "NULs", chunks: []string{"\x00\x00\x00"}, wantCodes: []string{CodeBinaryOutput}, wantData: "\x00\x00\x00"},
		{name: "one NUL in short text", chunks: []string{"ok\x00"}, wantCodes: []string{CodeBinaryOutput}, wantData: "ok\x00"},
		{name: "short text with an odd control stays text", chunks: []string{"a\x0fb\x0e"}, wantCodes: []string{CodeOutput}, wantData: "a\x0fb\x0e"},
		{
			name:      "many odd controls",
			chunks:    []string{strings.Repeat("\x01\x02abcdefghij", 8)},
			wantCodes: []string{CodeBinaryOutput}, wantData: strings.Repeat("\x01\x02abcdefghij", 8),
		},
		{
			name:      "terminal controls and escapes are text",
			chunks:    []string{strings.Repeat("\x1b[1mok\x1b[0m\a\b\t\r\n", 10)},
			wantCodes: []string{CodeOutput}, wantData: strings.Repeat("\x1b[1mok\x1b[0m\a\b\t\r\n", 10),
		},
		{
			name:      "mostly invalid UTF-8",
			chunks:    []string{strings.Repeat("\xff\xfeabcdef", 10)},
			wantCodes: []string{CodeBinaryOutput}, wantData: strings.Repeat("\xff\xfeabcdef", 10),
		},
		{
			name:      "a stray invalid byte in long text stays text",
			chunks:    []string{strings.Repeat("abcdefgh", 10) + "\xff"},
			wantCodes: []string{CodeOutput}, wantData: strings.Repeat("abcdefgh", 10) + "\ufffd",
		},
		{
			name:      "text, binary, text",
			chunks:    []string{"$ head -c 3 /dev/zero\r\n", "\x00\x00\x00", "$ "},
			wantCodes: []string{CodeOutput, CodeBinaryOutput, CodeOutput}, wantData: "$ head -c 3 /dev/zero\r\n\x00\x00\x00$ ",
		},
		{
			name:      "split characters around binary data",
			chunks:    []string{"a\xc3", "\xa9\x00\xe2\x82", "\xacb"},
			wantCodes: []string{CodeOutput, CodeBinaryOutput, CodeOutput}, wantData: "a\u00e9\x00\u20acb",
		},
		{
			name:      "split character at the end of binary data kept exactly at close",
			chunks:    []string{"\x00\xe2\x82"},
			wantCodes: []string{CodeBinaryOutput, CodeBinaryOutput}, wantData: "\x00\xe2\x82",
		},
		{
			name:      "large binary output split into events",
			chunks:    []string{zeros},
			wantCodes: []string{CodeBinaryOutput, CodeBinaryOutput, CodeBinaryOutput, CodeBinaryOutput}, wantData: zeros,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, code := range []string{CodeOutput, CodeInput} {
				data, codes := joinBytes(t, recordChunks(t, code, tt.chunks...))
				want := tt.wantCodes
				if code == CodeInput {
					want = nil
					asInput := map[string]string{CodeOutput: CodeInput, CodeBinaryOutput: CodeBinaryInput}
					for _, c := range tt.wantCodes {
						want = append(want, asInput[c])
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
		{Offset: 0, Kind: CodeOutput, Text: "$ cat blob"},
		{Offset: 2 * time.Millisecond, Kind: CodeOutput, Text: "$"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines = %+v, want %+v", got, want)
	}
	if n := int64(len(steps[0].output) + len(steps[1].output) + len(steps[2].output)); sum.BytesOut != n {
		t.Errorf("BytesOut = %d, want %d", sum.BytesOut, n)
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
	want := []Event{{0, CodeOutput, "o"}, {0, CodeInput, "i"}, {0, CodeOutput, "\u00e9"}, {0, CodeInput, "\u20ac"}}
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

// TestOnLineKeepsEveryLine: lines handed to OnLine stay intact while the
// Writer goes on (raw lines share arenas that later lines never write
// over), across reads that cut lines, lines longer than an arena, and
// lines that are edited (CR, erase) and so built as runes.
func TestOnLineKeepsEveryLine(t *testing.T) {
	text := journalText(1 << 20)
	text = append(text, "progress 10%\rprogress 99%\x1b[K\r\n"...)
	text = append(text, strings.Repeat("long-", 8000)+"\r\n"...)
	text = append(text, "\x1b[1mbold\x1b[0m tail\r\n"...)
	var got []string
	w, err := NewWriter(&memFile{}, Header{Width: 80, Height: 24}, WriterOptions{OnLine: func(l Line) { got = append(got, l.Text) }})
	mustNil(t, err)
	for i := 0; i < len(text); i += 4099 {
		mustNil(t, w.Output(text[i:min(i+4099, len(text))]))
	}
	_, err = w.Close()
	mustNil(t, err)
	want := strings.Split(strings.TrimSuffix(StripANSI(strings.ReplaceAll(string(text), "\r\n", "\n")), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != strings.TrimRight(want[i], " \t") {
			t.Fatalf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	if !slices.Contains(got, "progress 99%") || got[len(got)-1] != "bold tail" || len(got[len(got)-2]) > maxLineRunes {
		t.Errorf("edited, long and last lines wrong: %d lines", len(got))
	}
}

// StopLines, called from OnLine as the bastion's indexer does when it falls
// behind, ends the lines at once (a partial line is not reported at Close
// either), and the recording still holds every byte.
func TestStopLinesFromOnLine(t *testing.T) {
	var got []string
	var w *Writer
	f := &memFile{}
	w, err := NewWriter(f, Header{Width: 80, Height: 24}, WriterOptions{OnLine: func(l Line) {
		got = append(got, l.Text)
		if len(got) == 3 {
			w.StopLines()
		}
	}})
	mustNil(t, err)
	var text strings.Builder
	for i := range 100 {
		fmt.Fprintf(&text, "line %d\r\n", i)
	}
	text.WriteString("partial")
	for _, chunk := range strings.SplitAfter(text.String(), "\n") {
		mustNil(t, w.Output([]byte(chunk)))
	}
	_, err = w.Close()
	mustNil(t, err)
	if len(got) != 3 {
		t.Fatalf("OnLine got %d lines after StopLines at the third, want 3: %q", len(got), got)
	}
	rec, err := ReadAll(bytes.NewReader(f.bytes()))
	mustNil(t, err)
	var out strings.Builder
	for _, e := range rec.Events {
		if e.Code == CodeOutput {
			out.WriteString(e.Data)
		}
	}
	if out.String() != text.String() {
		t.Errorf("recording holds %d bytes of output, want all %d", out.Len(), text.Len())
	}
}

package sessionlog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSanitize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain text", in: "hello, w\u00f6rld \U0001F600\r\n", want: "hello, w\u00f6rld \U0001F600\r\n"},
		{name: "tab and backspace kept", in: "a\tb\bc", want: "a\tb\bc"},
		{name: "SGR kept", in: "\x1b[1;31mred\x1b[0m", want: "\x1b[1;31mred\x1b[0m"},
		{name: "SGR truecolour with colons kept", in: "\x1b[38:2::1:2:3mx", want: "\x1b[38:2::1:2:3mx"},
		{name: "cursor position kept", in: "\x1b[10;20Hx\x1b[H", want: "\x1b[10;20Hx\x1b[H"},
		{name: "erase kept", in: "\x1b[2J\x1b[K\x1b[1K", want: "\x1b[2J\x1b[K\x1b[1K"},
		{name: "erase scrollback dropped", in: "a\x1b[3Jb", want: "ab"},
		{name: "OSC 52 clipboard with BEL", in: "a\x1b]52;c;cm0gLXJmIC8K\x07b", want: "ab"},
		{name: "OSC 52 clipboard with ST", in: "a\x1b]52;c;cm0gLXJmIC8K\x1b\\b", want: "ab"},
		{name: "OSC 0 title", in: "\x1b]0;pwned\x07$ ", want: "$ "},
		{name: "OSC 2 title", in: "\x1b]2;pwned\x1b\\$ ", want: "$ "},
		{name: "OSC 8 hyperlink", in: "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\", want: "link"},
		{name: "DCS DECRQSS", in: "x\x1bP$qm\x1b\\y", want: "xy"},
		{name: "APC PM SOS", in: "\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\ok", want: "ok"},
		{name: "DSR cursor position", in: "a\x1b[6nb", want: "ab"},
		{name: "DSR status", in: "\x1b[5n\x1b[?6n", want: ""},
		{name: "primary DA", in: "\x1b[c\x1b[0c", want: ""},
		{name: "secondary and tertiary DA", in: "\x1b[>c\x1b[=c\x1b[>0c", want: ""},
		{name: "DECRQM mode query", in: "\x1b[?25$p", want: ""},
		{name: "window ops and title report", in: "\x1b[21t\x1b[8;100;200t\x1b[14t", want: ""},
		{name: "DECID and full reset", in: "\x1bZ\x1bc", want: ""},
		{name: "ENQ answerback and BEL", in: "a\x05b\x07c", want: "abc"},
		{name: "shift out", in: "a\x0eb\x0fc", want: "abc"},
		{name: "C1 CSI as UTF-8", in: "a\u009b6nb", want: "a6nb"},
		{name: "C1 OSC as UTF-8", in: "\u009d52;c;eA==\u009c", want: "52;c;eA=="},
		{name: "oversized CSI", in: "\x1b[" + strings.Repeat("1", 70) + "mtext", want: "text"},
		{name: "CSI at the size limit kept", in: "\x1b[" + strings.Repeat("1", 61) + "m", want: "\x1b[" + strings.Repeat("1", 61) + "m"},
		{name: "CSI one byte over the limit dropped", in: "\x1b[" + strings.Repeat("1", 62) + "mx", want: "x"},
		{name: "too many parameters", in: "\x1b[" + strings.Repeat("1;", 16) + "1mx", want: "x"},
		{name: "sixteen parameters kept", in: "\x1b[" + strings.Repeat("1;", 15) + "1mx", want: "\x1b[" + strings.Repeat("1;", 15) + "1mx"},
		{name: "cursor and alternate screen modes kept", in: "\x1b[?25l\x1b[?1049h\x1b[?25h", want: "\x1b[?25l\x1b[?1049h\x1b[?25h"},
		{name: "mouse reporting dropped", in: "\x1b[?1000h\x1b[?1006h\x1b[?25;1000h", want: ""},
		{name: "insert mode dropped", in: "\x1b[4h", want: ""},
		{name: "cursor style with intermediate dropped", in: "\x1b[2 q", want: ""},
		{name: "private SGR dropped", in: "\x1b[>4;1m", want: ""},
		{name: "ESC sequences kept", in: "\x1b7\x1b(0qq\x1b(B\x1b8", want: "\x1b7\x1b(0qq\x1b(B\x1b8"},
		{name: "CAN aborts a CSI", in: "\x1b[6\x18n", want: "n"},
		{name: "control inside CSI aborts it", in: "\x1b[6\nn", want: "\nn"},
		{name: "ESC restarts inside CSI", in: "\x1b[6\x1b[1mx", want: "\x1b[1mx"},
		{name: "ESC ends an unterminated OSC", in: "\x1b]0;title\x1b[1mx", want: "\x1b[1mx"},
		{name: "invalid UTF-8 replaced", in: "a\xffb", want: "a\ufffdb"},
		{name: "incomplete sequence at end dropped", in: "a\x1b[12", want: "a"},
		{name: "incomplete character at end replaced", in: "a\xe2\x82", want: "a\ufffd\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sanitize(tt.in); got != tt.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestSanitizerSplit feeds inputs cut at every point, and byte by byte, and
// expects what the one-shot Sanitize gives.
func TestSanitizerSplit(t *testing.T) {
	inputs := []struct {
		name string
		in   string
	}{
		{name: "OSC 52 between text", in: "a\x1b]52;c;cm0gLXJmIC8K\x1b\\b\x1b[1mc"},
		{name: "DSR between SGR", in: "\x1b[31mx\x1b[6n\x1b[0m"},
		{name: "multi-byte text", in: "\u00e9\u20ac\U0001F600\x1b[Kz"},
		{name: "oversized CSI", in: "\x1b[" + strings.Repeat("9", 80) + "Hok"},
		{name: "title with UTF-8", in: "\x1b]2;t\u00eftle\x07\u00e9"},
	}
	for _, tt := range inputs {
		t.Run(tt.name, func(t *testing.T) {
			want := Sanitize(tt.in)
			for i := 0; i <= len(tt.in); i++ {
				var s Sanitizer
				got := s.Filter(tt.in[:i]) + s.Filter(tt.in[i:]) + s.Flush()
				if got != want {
					t.Errorf("split at %d: %q, want %q", i, got, want)
				}
			}
			var s Sanitizer
			var b strings.Builder
			for i := range len(tt.in) {
				b.WriteString(s.Filter(tt.in[i : i+1]))
			}
			b.WriteString(s.Flush())
			if b.String() != want {
				t.Errorf("byte by byte: %q, want %q", b.String(), want)
			}
		})
	}
}

func TestSanitizerHoldsBackIncomplete(t *testing.T) {
	var s Sanitizer
	if got := s.Filter("ok\x1b]52;c;"); got != "ok" {
		t.Errorf("first part = %q, want %q", got, "ok")
	}
	if got := s.Filter("ZXZpbA==\x07fine"); got != "fine" {
		t.Errorf("second part = %q, want %q", got, "fine")
	}
	if got := s.Filter("\x1b[3"); got != "" {
		t.Errorf("start of a CSI = %q, want nothing yet", got)
	}
	if got := s.Filter("1m"); got != "\x1b[31m" {
		t.Errorf("end of a CSI = %q, want %q", got, "\x1b[31m")
	}
}

func TestStripANSI(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain", in: "hello\n", want: "hello\n"},
		{name: "SGR", in: "\x1b[1;31mred\x1b[0m text", want: "red text"},
		{name: "CRLF", in: "a\r\nb\r\n", want: "a\nb\n"},
		{name: "carriage return overwrites", in: "abc\rX", want: "Xbc"},
		{name: "backspace moves back", in: "abc\b\bX", want: "aXc"},
		{name: "backspace at start", in: "\b\ba", want: "a"},
		{name: "prompt redrawn after erase line", in: "old text\r\x1b[K$ ls", want: "$ ls"},
		{name: "readline delete char", in: "abc\b\x1b[P", want: "ab"},
		{name: "cursor forward pads", in: "a\x1b[3Cb", want: "a   b"},
		{name: "cursor back", in: "abc\x1b[2DX", want: "aXc"},
		{name: "column absolute", in: "abcdef\x1b[3GX", want: "abXdef"},
		{name: "insert blanks", in: "ac\b\x1b[1@b", want: "abc"},
		{name: "erase whole line", in: "abc\x1b[2Kd", want: "   d"},
		{name: "OSC and DCS removed", in: "\x1b]0;title\x07x\x1bP1$r0m\x1b\\y", want: "xy"},
		{name: "controls removed", in: "a\x07\x05b", want: "ab"},
		{name: "tab kept", in: "a\tb", want: "a\tb"},
		{name: "invalid UTF-8 replaced", in: "a\xff", want: "a\ufffd"},
		{name: "C1 removed", in: "a\u009b31mb", want: "a31mb"},
		{name: "empty lines kept", in: "a\n\nb", want: "a\n\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StripANSI(tt.in); got != tt.want {
				t.Errorf("StripANSI(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestWriteTranscriptGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "session.cast"))
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(data))
	mustNil(t, err)
	var b bytes.Buffer
	mustNil(t, WriteTranscript(&b, rec))
	golden(t, "session.txt", b.Bytes())
}

func TestWriteTranscript(t *testing.T) {
	tests := []struct {
		name string
		rec  Recording
		want string
	}{
		{
			name: "line starts where its first text arrived",
			rec: Recording{Events: []Event{
				{1, CodeOutput, "$ "}, {2.5, CodeOutput, "ls\r\n"}, {3723.4567, CodeOutput, "done\r\n"},
			}},
			want: "[00:00:01.000] $ ls\n[01:02:03.456] done\n",
		},
		{
			name: "markers, input and resize",
			rec: Recording{Events: []Event{
				{1, CodeInput, "secret\r"}, {2, CodeResize, "100x30"}, {3, CodeMarker, "deploy\x1b]0;x\x07 start"},
			}},
			want: "[00:00:03.000] # marker: deploy start\n",
		},
		{
			name: "partial last line and truncation",
			rec: Recording{Truncated: true, Events: []Event{
				{1, CodeOutput, "\x1b[32mok\x1b[0m\r\n\r\n   \r\n"}, {2, CodeOutput, "$ exi"},
			}},
			want: "[00:00:01.000] ok\n[00:00:02.000] $ exi\n[00:00:02.000] # recording truncated here\n",
		},
		{
			name: "a run of binary output is one note",
			rec: Recording{Events: []Event{
				{1, CodeOutput, "$ head -c 7 /dev/zero; echo"}, {2, CodeBinaryOutput, "AAAAAA=="}, {2.5, CodeBinaryOutput, "AAAA"}, {2.5, CodeBinaryInput, "AA=="},
				{3, CodeOutput, "\r\n$ "}, {4, CodeBinaryOutput, "AA=="}, {5, CodeMarker, "exit-status 0"},
			}},
			want: "[00:00:01.000] $ head -c 7 /dev/zero; echo\n[00:00:02.000] [7 bytes of binary output]\n" +
				"[00:00:03.000] $\n[00:00:04.000] [1 byte of binary output]\n[00:00:05.000] # marker: exit-status 0\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			mustNil(t, WriteTranscript(&b, &tt.rec))
			if b.String() != tt.want {
				t.Errorf("transcript:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

package sessionlog

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestField(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{name: "plain text kept", in: "deploy release 42 — w\u00f6rld \U0001F600", want: "deploy release 42 — w\u00f6rld \U0001F600"},
		{name: "backslash kept", in: `C:\temp\x1b`, want: `C:\temp\x1b`},
		{name: "newline cannot fake a row", in: "a\nb\r\nc", want: `a\nb\r\nc`},
		{name: "tab cannot fake a column", in: "a\tb", want: `a\tb`},
		{name: "lone ESC", in: "a\x1bb", want: `a\x1bb`},
		{name: "CSI screen clear and cursor home", in: "\x1b[2J\x1b[H", want: `\x1b[2J\x1b[H`},
		{name: "OSC 52 clipboard", in: "\x1b]52;c;cm0gLXJmIC8K\x07", want: `\x1b]52;c;cm0gLXJmIC8K\x07`},
		{name: "OSC 0 title with ST", in: "\x1b]0;pwned\x1b\\", want: `\x1b]0;pwned\x1b\`},
		{name: "NUL and DEL", in: "a\x00b\x7f", want: `a\x00b\x7f`},
		{name: "C1 CSI", in: "a\u009b2Jb", want: `a\u009b2Jb`},
		{name: "C1 OSC and ST", in: "\u009d0;t\u009c", want: `\u009d0;t\u009c`},
		{name: "bidi override", in: "evil\u202Etxt.exe", want: `evil\u202etxt.exe`},
		{name: "bidi isolates", in: "\u2066a\u2067b\u2068c\u2069", want: `\u2066a\u2067b\u2068c\u2069`},
		{name: "zero width and line separator", in: "a\u200bb\u2028c", want: `a\u200bb\u2028c`},
		{name: "invalid UTF-8 bytes", in: "a\xff\xc3b", want: `a\xff\xc3b`},
		{name: "raw 8-bit CSI byte", in: "a\x9b2J", want: `a\x9b2J`},
		{name: "at the bound kept", in: "abcd", max: 4, want: "abcd"},
		{name: "over the bound cut with ellipsis", in: "abcdef", max: 4, want: "abcd…(+2 bytes)"},
		{name: "cut between characters", in: "ab\u00e9\u00e9", max: 3, want: "ab…(+4 bytes)"},
		{name: "escape never split", in: "ab\x1b", max: 4, want: "ab…(+1 bytes)"},
		{name: "100 KB bounded", in: long, max: 1000, want: long[:1000] + "…(+101400 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Field(tt.in, tt.max); got != tt.want {
				t.Errorf("Field(%.40q, %d) = %.80q, want %.80q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestSanitizeDropsBidiControls(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "ls \u202Efdp.exe", want: "ls fdp.exe"},
		{in: "\u2066a\u2067b\u2068c\u2069\u202A\u202B\u202C\u202D", want: "abc"},
		{in: "\u200Fmark kept\u200E", want: "\u200Fmark kept\u200E"},
	}
	for _, tt := range tests {
		if got := Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := StripANSI(tt.in); got != tt.want+"\n" && got != tt.want {
			t.Errorf("StripANSI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzField: Field never panics, its result is valid UTF-8 without C0, DEL,
// C1 or bidi controls, respects the bound (plus the ellipsis note), and is
// the input itself when the input was printable text.
func FuzzField(f *testing.F) {
	f.Add("a\x1b]52;c;eA==\x07b", 0)
	f.Add("\u202Eevil\u2066\x00\u009b2J\n\xff", 8)
	f.Add(strings.Repeat("\u00e9", 50), 7)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 1 << 12
		got := Field(s, max)
		if !utf8.ValidString(got) {
			t.Fatalf("Field(%q) = %q is not valid UTF-8", s, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || isBidiControl(r) {
				t.Fatalf("Field(%q) = %q contains %U", s, got, r)
			}
		}
		if max > 0 && len(got) > max+len(Ellipsis)+len("(+ bytes)")+20 {
			t.Fatalf("Field(%q, %d) is %d bytes", s, max, len(got))
		}
		if max <= 0 && !strings.ContainsAny(s, "\\") && Field(got, 0) != got {
			t.Fatalf("Field is not stable on its own output: %q -> %q", got, Field(got, 0))
		}
	})
}

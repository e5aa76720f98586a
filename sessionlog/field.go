package sessionlog

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// isBidiControl reports whether r is one of the Unicode bidirectional
// embedding, override or isolate controls (U+202A..U+202E, U+2066..U+2069):
// they make a terminal show text in an order other than the one it has
// ("Trojan Source"), so neither a replay nor a field of text passes them on.
func isBidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// Ellipsis is what Field appends to a value it cut short, followed by how
// many bytes of the value were left out, e.g. "…(+99000 bytes)".
const Ellipsis = "…"

// Field makes one value that came from outside (a user name, a host, a
// command, a file name, a reason, an error text from the server) safe to
// show as part of one line of a person's terminal, and recognisable: it is
// stricter than Sanitize, which keeps colours and cursor moves of a replay.
//
// Every rune that is not a printable character or the ASCII space is shown
// as a visible Go-style escape instead of being interpreted: "\n", "\r" and
// "\t" for those controls (so a value cannot fake a new row or column),
// "\x1b" for ESC and the other C0 controls, NUL and DEL, "\u009b" for C1
// controls, "\u202e" for bidi overrides and other format characters, and
// "\xff" for each byte of invalid UTF-8. No byte below 0x20, no DEL, no C1
// control and no bidi control is ever in the result, so no escape sequence
// can start in it. Backslashes are left as they are.
//
// When max > 0 and the result would be longer than max bytes, it is cut
// between characters at or before max bytes and Ellipsis is appended with
// the number of bytes of s left out, so a person sees that it was cut.
func Field(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		piece := fieldRune(r, size, s[i])
		if max > 0 && b.Len()+len(piece) > max {
			fmt.Fprintf(&b, "%s(+%d bytes)", Ellipsis, len(s)-i)
			return b.String()
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// fieldRune is what Field writes for the rune r of size bytes that starts
// with byte first.
func fieldRune(r rune, size int, first byte) string {
	switch {
	case r == utf8.RuneError && size == 1:
		return fmt.Sprintf(`\x%02x`, first)
	case r == '\n':
		return `\n`
	case r == '\r':
		return `\r`
	case r == '\t':
		return `\t`
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf(`\x%02x`, r)
	case r == ' ' || (unicode.IsPrint(r) && !isBidiControl(r)):
		return string(r)
	case r > 0xffff:
		return fmt.Sprintf(`\U%08x`, r)
	}
	return fmt.Sprintf(`\u%04x`, r)
}

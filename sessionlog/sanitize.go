package sessionlog

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"
)

// Sanitizer removes escape sequences that could harm the terminal of
// someone viewing a recording: it keeps printable text, BS, HT, LF, VT, FF
// and CR, SGR (colours) and cursor-movement/erase CSI sequences, a few
// cursor and character-set ESC sequences, and showing/hiding the cursor and
// the alternate screen. It drops everything else, in particular OSC (titles,
// clipboard writes via OSC 52, hyperlinks), DCS (DECRQSS...), APC, PM, SOS,
// C1 controls, the Unicode bidi embedding, override and isolate controls
// (U+202A..U+202E, U+2066..U+2069), queries that make the terminal answer (DSR, DA, window
// reports), CSI sequences longer than 64 bytes or with more than 16
// parameters, and ENQ/BEL and other C0 controls.
//
// Filter may be called with a stream cut at any point: incomplete escape
// sequences and UTF-8 characters are carried to the next call. The zero
// value is ready to use. A Sanitizer is not safe for concurrent use.
type Sanitizer struct {
	p   ansiParser
	out sanitizeSink
}

// Filter returns the safe part of p, holding back an incomplete escape
// sequence or UTF-8 character at its end until the next call.
func (s *Sanitizer) Filter(p string) string {
	s.out.buf = s.out.buf[:0]
	s.p.feed(p, &s.out)
	return string(s.out.buf)
}

// Flush ends the stream: an incomplete UTF-8 character held back becomes
// U+FFFD per byte and an unfinished escape sequence is dropped.
func (s *Sanitizer) Flush() string {
	s.out.buf = s.out.buf[:0]
	s.p.flush(&s.out)
	return string(s.out.buf)
}

// Sanitize is Filter and Flush on a fresh Sanitizer: it makes a complete
// string safe to write to a terminal.
func Sanitize(s string) string {
	var z Sanitizer
	return z.Filter(s) + z.Flush()
}

type sanitizeSink struct{ buf []byte }

func (k *sanitizeSink) text(r rune) { k.buf = utf8.AppendRune(k.buf, r) }

func (k *sanitizeSink) control(c byte) {
	switch c {
	case '\b', '\t', '\n', '\v', '\f', '\r':
		k.buf = append(k.buf, c)
	}
}

func (k *sanitizeSink) csi(seq []byte) {
	if allowedCSI(seq) {
		k.buf = append(k.buf, seq...)
	}
}

func (k *sanitizeSink) escape(seq []byte) {
	switch string(seq) {
	case "\x1b7", "\x1b8", // save/restore cursor
		"\x1bD", "\x1bE", "\x1bM", // index, next line, reverse index
		"\x1b=", "\x1b>", // keypad modes
		"\x1b(B", "\x1b(0", "\x1b)B", "\x1b)0": // ASCII and line-drawing sets
		k.buf = append(k.buf, seq...)
	}
}

// allowedPrivateMode reports whether a replay may set the DEC mode n
// (CSI ? n h/l): autowrap, cursor visibility and the alternate screen, but
// not mouse or focus reporting, which make the terminal send input.
func allowedPrivateMode(n int) bool {
	switch n {
	case 7, 25, 47, 1047, 1048, 1049:
		return true
	}
	return false
}

// allowedCSI reports whether a complete CSI sequence is display-only.
func allowedCSI(seq []byte) bool {
	params, inter, final := csiParts(seq)
	if len(inter) > 0 {
		return false // DECSCUSR, DECRQM and friends
	}
	if bytes.Count(params, []byte(";"))+bytes.Count(params, []byte(":")) >= maxCSIParams {
		return false
	}
	if len(params) > 0 && params[0] == '?' {
		if final != 'h' && final != 'l' {
			return false
		}
		nums, ok := csiNumbers(params[1:])
		if !ok {
			return false
		}
		for _, n := range nums {
			if !allowedPrivateMode(n) {
				return false
			}
		}
		return true
	}
	if final == 'm' { // SGR, with ':' sub-parameters for colours
		return len(bytes.Trim(params, "0123456789;:")) == 0
	}
	if !strings.ContainsRune("ABCDEFGHfd`aeJKXP@LMSTrsu", rune(final)) {
		return false // DSR (n), DA (c), window ops (t), modes (h/l)...
	}
	nums, ok := csiNumbers(params)
	if !ok || len(nums) > 2 {
		return false
	}
	if final == 'J' && nums[0] > 2 {
		return false // 3J erases the viewer's scrollback
	}
	return true
}

// StripANSI returns the plain text of terminal output: escape sequences and
// controls removed, CR returning to the start of the line and BS moving back
// so that later text overwrites earlier text as on a terminal, and erase-line
// and cursor-left/right sequences applied to the line.
func StripANSI(s string) string {
	var b strings.Builder
	lb := lineBuilder{emit: func(line string, _ time.Duration) {
		b.WriteString(line)
		b.WriteByte('\n')
	}}
	var p ansiParser
	p.feed(s, &lb)
	p.flush(&lb)
	b.WriteString(lb.String())
	return b.String()
}

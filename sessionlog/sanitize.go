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
	b.WriteString(string(lb.buf))
	return b.String()
}

// maxLineRunes bounds a line built from a stream without newlines.
const maxLineRunes = 16 << 10

// lineBuilder turns a parsed terminal stream into lines of plain text, the
// way a terminal would show a single line. In input mode it follows what
// typing does: CR ends a line, BS/DEL delete, ^U clears, ^C abandons.
type lineBuilder struct {
	input  bool
	emit   func(line string, start time.Duration)
	now    time.Duration // offset of the data being fed
	start  time.Duration // offset where the current line started
	buf    []rune
	cursor int
	ss3    bool // ESC O seen: the next character names a key (input)
}

func (lb *lineBuilder) put(r rune) {
	if len(lb.buf) == 0 {
		lb.start = lb.now
	}
	switch {
	case lb.cursor < len(lb.buf) && lb.input:
		// Line editors insert where the cursor is.
		lb.buf = append(lb.buf[:lb.cursor+1], lb.buf[lb.cursor:]...)
		lb.buf[lb.cursor] = r
	case lb.cursor < len(lb.buf):
		lb.buf[lb.cursor] = r
	default:
		lb.buf = append(lb.buf, r)
	}
	lb.cursor++
	if len(lb.buf) >= maxLineRunes {
		lb.end()
	}
}

// end emits the current line, even an empty one, and starts a new one.
func (lb *lineBuilder) end() {
	if lb.emit != nil {
		lb.emit(string(lb.buf), lb.start)
	}
	lb.reset()
}

func (lb *lineBuilder) reset() {
	lb.buf = lb.buf[:0]
	lb.cursor = 0
}

// deleteAt removes n runes at the cursor.
func (lb *lineBuilder) deleteAt(n int) {
	if lb.cursor >= len(lb.buf) {
		return
	}
	n = min(n, len(lb.buf)-lb.cursor)
	lb.buf = append(lb.buf[:lb.cursor], lb.buf[lb.cursor+n:]...)
}

func (lb *lineBuilder) text(r rune) {
	if lb.ss3 {
		lb.ss3 = false
		switch r {
		case 'C': // right arrow in application cursor mode
			lb.right(1)
		case 'D':
			lb.cursor = max(lb.cursor-1, 0)
		}
		if r >= 0x40 && r <= 0x7e {
			return
		}
	}
	lb.put(r)
}

func (lb *lineBuilder) control(c byte) {
	lb.ss3 = false
	switch {
	case c == '\n' || (lb.input && c == '\r'):
		lb.end()
	case c == '\r':
		lb.cursor = 0
	case c == '\t':
		lb.put('\t')
	case lb.input && (c == '\b' || c == 0x7f):
		if lb.cursor > 0 {
			lb.cursor--
			lb.deleteAt(1)
		}
	case c == '\b':
		if lb.cursor > 0 {
			lb.cursor--
		}
	case lb.input && c == 0x15: // ^U: kill to start of line
		lb.buf = append(lb.buf[:0], lb.buf[lb.cursor:]...)
		lb.cursor = 0
	case lb.input && c == 0x03: // ^C: the line is abandoned
		lb.reset()
	}
}

func (lb *lineBuilder) csi(seq []byte) {
	lb.ss3 = false
	params, inter, final := csiParts(seq)
	nums, ok := csiNumbers(params)
	if !ok || len(inter) > 0 {
		return
	}
	n := max(nums[0], 1)
	switch final {
	case 'C':
		lb.right(n)
	case 'D':
		lb.cursor = max(lb.cursor-n, 0)
	case 'G':
		if !lb.input {
			lb.cursor = 0
			lb.right(n - 1)
		}
	case 'K':
		if lb.input {
			return
		}
		switch nums[0] {
		case 0:
			lb.buf = lb.buf[:min(lb.cursor, len(lb.buf))]
		case 1:
			for i := 0; i < lb.cursor && i < len(lb.buf); i++ {
				lb.buf[i] = ' '
			}
		case 2:
			lb.buf = lb.buf[:0]
			c := lb.cursor
			lb.cursor = 0
			lb.right(c)
		}
	case 'P':
		lb.deleteAt(n)
	case '@':
		if lb.cursor < len(lb.buf) && len(lb.buf)+n < maxLineRunes {
			lb.buf = append(lb.buf[:lb.cursor], append([]rune(strings.Repeat(" ", n)), lb.buf[lb.cursor:]...)...)
		}
	case '~':
		if lb.input && nums[0] == 3 { // Delete key
			lb.deleteAt(1)
		}
	}
}

// right moves the cursor n columns right; on output the line is padded with
// spaces as a terminal would show, typed input cannot move past its end.
func (lb *lineBuilder) right(n int) {
	n = min(n, maxLineRunes)
	if lb.input {
		lb.cursor = min(lb.cursor+n, len(lb.buf))
		return
	}
	for range n {
		if lb.cursor < len(lb.buf) {
			lb.cursor++
			continue
		}
		lb.put(' ')
		if lb.cursor == 0 {
			return // put ended an over-long line
		}
	}
}

func (lb *lineBuilder) escape(seq []byte) {
	lb.ss3 = lb.input && string(seq) == "\x1bO"
}

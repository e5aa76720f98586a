package sessionlog

import (
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// maxLineRunes bounds a line built from a stream without newlines.
const maxLineRunes = 16 << 10

// lineBuilder turns a parsed terminal stream into lines of plain text, the
// way a terminal would show a single line. In input mode it follows what
// typing does: CR ends a line, BS/DEL delete, ^U clears, ^C abandons.
//
// A line that is only appended to, which is most output, is built as the
// UTF-8 bytes it will be (raw, carved from an arena that emitted lines
// keep), so that each byte of output is copied once, straight from the
// text the parser is fed, and emit gets it without another copy; the
// first edit (a character written over another, a deletion) moves the
// line to runes.
type lineBuilder struct {
	input  bool
	emit   func(line string, start time.Duration)
	now    time.Duration // offset of the data being fed
	start  time.Duration // offset where the current line started
	buf    []rune        // the line, once edited (editing is set)
	cursor int
	ss3    bool // ESC O seen: the next character names a key (input)

	editing bool
	arena   []byte // raw lines: arena[mark:] is the current line's bytes
	mark    int
	runes   int // runes in arena[mark:]
}

// lineArena is the size of a lineBuilder's arena for raw lines: small,
// since a Writer keeps one per direction, and one allocation for about a
// hundred lines of a log.
const lineArena = 16 << 10

// length is the line's length in runes.
func (lb *lineBuilder) length() int {
	if lb.editing {
		return len(lb.buf)
	}
	return lb.runes
}

// edit moves a raw line to runes, for an edit.
func (lb *lineBuilder) edit() {
	if lb.editing {
		return
	}
	lb.buf = append(lb.buf[:0], []rune(string(lb.arena[lb.mark:]))...)
	lb.arena = lb.arena[:lb.mark]
	lb.runes = 0
	lb.editing = true
}

// appendRaw appends text to a raw line, moving the line to a new arena
// when this one is full (emitted lines keep the old one).
func (lb *lineBuilder) appendRaw(s string) {
	lb.grow(len(s))
	lb.arena = append(lb.arena, s...)
}

// grow makes room for n more bytes of the current raw line.
func (lb *lineBuilder) grow(n int) {
	if len(lb.arena)+n > cap(lb.arena) {
		line := lb.arena[lb.mark:]
		next := make([]byte, 0, max(lineArena, 2*(len(line)+n)))
		lb.arena = append(next, line...)
		lb.mark = 0
	}
}

// dropArena lets the arena go (an idle Writer), keeping only the line in
// progress, such as a shell's prompt, in a buffer of its own size; the
// lines emitted from the arena keep what they use.
func (lb *lineBuilder) dropArena() {
	if lb.editing {
		lb.arena, lb.mark = nil, 0
		return
	}
	if line := lb.arena[lb.mark:]; len(line) > 0 {
		lb.arena, lb.mark = append([]byte(nil), line...), 0
	} else {
		lb.arena, lb.mark = nil, 0
	}
	lb.buf = nil
}

// String is the line built so far.
func (lb *lineBuilder) String() string {
	if lb.editing {
		return string(lb.buf)
	}
	return string(lb.arena[lb.mark:])
}

// textRun takes a run of printable ASCII: appended to a raw line in one
// copy, rune by rune otherwise.
func (lb *lineBuilder) textRun(s string) {
	for s != "" && !lb.editing && !lb.ss3 && lb.cursor == lb.runes {
		if lb.runes == 0 {
			lb.start = lb.now
		}
		n := min(len(s), maxLineRunes-lb.runes)
		lb.appendRaw(s[:n])
		lb.runes += n
		lb.cursor += n
		s = s[n:]
		if lb.runes >= maxLineRunes {
			lb.end()
		}
	}
	for i := 0; i < len(s); i++ {
		lb.text(rune(s[i]))
	}
}

func (lb *lineBuilder) put(r rune) {
	if lb.length() == 0 {
		lb.start = lb.now
	}
	if !lb.editing && lb.cursor == lb.runes {
		lb.grow(utf8.UTFMax)
		lb.arena = utf8.AppendRune(lb.arena, r)
		lb.runes++
		lb.cursor++
		if lb.runes >= maxLineRunes {
			lb.end()
		}
		return
	}
	lb.edit()
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

// end emits the current line, even an empty one, and starts a new one. A
// raw line is passed as a string over its arena bytes, which are never
// written again.
func (lb *lineBuilder) end() {
	if lb.emit != nil {
		if lb.editing {
			lb.emit(string(lb.buf), lb.start)
		} else {
			line := lb.arena[lb.mark:]
			lb.emit(unsafe.String(unsafe.SliceData(line), len(line)), lb.start)
			lb.mark = len(lb.arena)
		}
	}
	lb.reset()
}

func (lb *lineBuilder) reset() {
	lb.buf = lb.buf[:0]
	lb.arena = lb.arena[:lb.mark]
	lb.runes = 0
	lb.editing = false
	lb.cursor = 0
}

// deleteAt removes n runes at the cursor.
func (lb *lineBuilder) deleteAt(n int) {
	if lb.cursor >= lb.length() {
		return
	}
	lb.edit()
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
		lb.edit()
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
		if lb.input || (nums[0] == 0 && lb.cursor >= lb.length()) {
			return // nothing to erase: the line stays raw
		}
		lb.edit()
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
		if lb.cursor < lb.length() {
			lb.edit()
		}
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
		lb.cursor = min(lb.cursor+n, lb.length())
		return
	}
	for range n {
		if lb.cursor < lb.length() {
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

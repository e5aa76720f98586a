package sessionlog

import "unicode/utf8"

// ansiHandler receives what ansiParser recognises in a terminal stream.
type ansiHandler interface {
	text(r rune)       // a printable rune; utf8.RuneError for each invalid byte
	control(c byte)    // a C0 control (0x00-0x1f except ESC) or DEL
	csi(seq []byte)    // a complete CSI sequence, ESC '[' included
	escape(seq []byte) // a complete two-or-more byte ESC sequence other than CSI and strings
}

type parserState uint8

const (
	stGround    parserState = iota
	stEscape                // after ESC
	stCSI                   // inside ESC [ ... collecting
	stCSIIgnore             // inside an oversized CSI: drop until its final byte
	stString                // inside OSC/DCS/SOS/PM/APC: drop until BEL or ST
	stStringEsc             // ESC seen inside a string
)

const (
	maxCSILen    = 64 // longer CSI sequences are dropped whole
	maxCSIParams = 16
)

// ansiParser splits a terminal byte stream into text, controls and escape
// sequences, following the shape of the DEC/ECMA-48 parser that terminals
// use. It is incremental: an escape sequence or a UTF-8 character split
// across calls is carried to the next call.
//
// Every sequence it cannot classify is aborted and its bytes re-read as
// ordinary input, so nothing is ever passed on inside a half-parsed sequence.
type ansiParser struct {
	state parserState
	seq   []byte // the sequence being collected, ESC included
	carry []byte // an incomplete UTF-8 character at the end of the last feed
}

// runHandler is an ansiHandler that also takes runs of printable ASCII
// whole (text for each byte, in one call).
type runHandler interface {
	textRun(s string)
}

// feed parses s, calling h for each complete item.
func (p *ansiParser) feed(s string, h ansiHandler) {
	if len(p.carry) > 0 {
		s = string(p.carry) + s
		p.carry = p.carry[:0]
	}
	rh, _ := h.(runHandler)
	for i := 0; i < len(s); {
		c := s[i]
		switch p.state {
		case stGround:
			if rh != nil && c >= 0x20 && c < 0x7f {
				j := i + 1
				for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f {
					j++
				}
				rh.textRun(s[i:j])
				i = j
				continue
			}
			n, whole := p.ground(s[i:], h)
			if !whole {
				p.carry = append(p.carry, s[i:]...)
				return
			}
			i += n
		case stEscape:
			i += p.escapeByte(c, h)
		case stCSI, stCSIIgnore:
			i += p.csiByte(c, h)
		case stString:
			i += p.stringByte(c)
		case stStringEsc:
			i += p.stringEscByte(c)
		}
	}
}

// The byte handlers below return how many bytes they consumed: 1, or 0
// when the byte must be read again in the state they moved to.

// ground handles the character at the start of s outside any sequence and
// returns its length; whole is false when s ends inside a UTF-8 character,
// which feed then carries to the next call.
func (p *ansiParser) ground(s string, h ansiHandler) (n int, whole bool) {
	c := s[0]
	if c >= utf8.RuneSelf {
		if !utf8.FullRuneInString(s) {
			return 0, false
		}
		r, size := utf8.DecodeRuneInString(s)
		if r >= 0x80 && r <= 0x9f {
			// C1 controls (8-bit CSI, OSC, DCS...): some terminals obey
			// them; never pass them on.
			return size, true
		}
		if isBidiControl(r) {
			return size, true // reorders what the viewer sees
		}
		h.text(r)
		return size, true
	}
	switch {
	case c == 0x1b:
		p.state = stEscape
		p.seq = append(p.seq[:0], c)
	case c < 0x20 || c == 0x7f:
		h.control(c)
	default:
		h.text(rune(c))
	}
	return 1, true
}

// escapeByte handles c after ESC.
func (p *ansiParser) escapeByte(c byte, h ansiHandler) int {
	switch {
	case c == '[':
		p.seq = append(p.seq, c)
		p.state = stCSI
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		p.state = stString
	case c == 0x1b:
		p.seq = append(p.seq[:0], c)
	case c >= 0x20 && c <= 0x2f: // intermediate
		p.seq = append(p.seq, c)
		if len(p.seq) > maxCSILen {
			p.state = stGround
		}
	case c >= 0x30 && c <= 0x7e: // final
		p.seq = append(p.seq, c)
		p.state = stGround
		h.escape(p.seq)
	default:
		return p.abort(c)
	}
	return 1
}

// csiByte handles c inside a CSI sequence.
func (p *ansiParser) csiByte(c byte, h ansiHandler) int {
	switch {
	case c >= 0x20 && c <= 0x3f: // parameter or intermediate
		if p.state == stCSI {
			p.seq = append(p.seq, c)
			if len(p.seq) > maxCSILen {
				p.state = stCSIIgnore
			}
		}
	case c >= 0x40 && c <= 0x7e: // final
		if p.state == stCSI {
			p.seq = append(p.seq, c)
			if len(p.seq) <= maxCSILen {
				h.csi(p.seq)
			}
		}
		p.state = stGround
	case c == 0x1b:
		p.state = stEscape
		p.seq = append(p.seq[:0], c)
	default:
		return p.abort(c)
	}
	return 1
}

// abort ends the sequence at c (CAN, SUB, another control, DEL or
// non-ASCII): CAN and SUB are consumed, as terminals do; any other byte is
// read again as ordinary input.
func (p *ansiParser) abort(c byte) int {
	p.state = stGround
	if c == 0x18 || c == 0x1a {
		return 1
	}
	return 0
}

// stringByte handles c inside an OSC, DCS, SOS, PM or APC string, which is
// dropped until BEL or ST (or CAN, SUB).
func (p *ansiParser) stringByte(c byte) int {
	switch c {
	case 0x07, 0x18, 0x1a:
		p.state = stGround
	case 0x1b:
		p.state = stStringEsc
	}
	return 1
}

// stringEscByte handles c after ESC inside a string.
func (p *ansiParser) stringEscByte(c byte) int {
	if c == '\\' {
		p.state = stGround
		return 1
	}
	// Another escape sequence starts: the string ends here, as in xterm.
	p.state = stEscape
	p.seq = append(p.seq[:0], 0x1b)
	return 0
}

// flush reports an incomplete UTF-8 character left at the end of the
// stream as one U+FFFD per byte and forgets any unfinished escape sequence.
func (p *ansiParser) flush(h ansiHandler) {
	for range p.carry {
		h.text(utf8.RuneError)
	}
	p.carry = p.carry[:0]
	p.state = stGround
	p.seq = p.seq[:0]
}

// csiParts returns the parameter bytes of a CSI sequence (between ESC [
// and the final byte), its intermediate bytes and its final byte.
func csiParts(seq []byte) (params, intermediates []byte, final byte) {
	body := seq[2 : len(seq)-1]
	final = seq[len(seq)-1]
	i := 0
	for i < len(body) && body[i] >= 0x30 && body[i] <= 0x3f {
		i++
	}
	return body[:i], body[i:], final
}

// csiNumbers parses plain numeric parameters ("1;2"), reporting ok=false for
// private prefixes or sub-parameters. Empty parameters are 0.
func csiNumbers(params []byte) (nums []int, ok bool) {
	n := 0
	for _, c := range params {
		switch {
		case c >= '0' && c <= '9':
			if n < 1<<20 {
				n = n*10 + int(c-'0')
			}
		case c == ';':
			nums = append(nums, n)
			n = 0
		default:
			return nil, false
		}
	}
	return append(nums, n), true
}

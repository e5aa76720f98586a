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

// feed parses s, calling h for each complete item.
func (p *ansiParser) feed(s string, h ansiHandler) {
	if len(p.carry) > 0 {
		s = string(p.carry) + s
		p.carry = p.carry[:0]
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch p.state {
		case stGround:
			if c >= utf8.RuneSelf {
				if !utf8.FullRuneInString(s[i:]) {
					p.carry = append(p.carry, s[i:]...)
					return
				}
				r, size := utf8.DecodeRuneInString(s[i:])
				i += size
				if r >= 0x80 && r <= 0x9f {
					// C1 controls (8-bit CSI, OSC, DCS...): some
					// terminals obey them; never pass them on.
					continue
				}
				h.text(r)
				continue
			}
			i++
			switch {
			case c == 0x1b:
				p.state = stEscape
				p.seq = append(p.seq[:0], c)
			case c < 0x20 || c == 0x7f:
				h.control(c)
			default:
				h.text(rune(c))
			}
		case stEscape:
			switch {
			case c == '[':
				p.seq = append(p.seq, c)
				p.state = stCSI
				i++
			case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
				p.state = stString
				i++
			case c == 0x1b:
				p.seq = append(p.seq[:0], c)
				i++
			case c >= 0x20 && c <= 0x2f: // intermediate
				p.seq = append(p.seq, c)
				i++
				if len(p.seq) > maxCSILen {
					p.state = stGround
				}
			case c >= 0x30 && c <= 0x7e: // final
				p.seq = append(p.seq, c)
				i++
				p.state = stGround
				h.escape(p.seq)
			default:
				// CAN, SUB, other controls, DEL, non-ASCII: abort and
				// re-read the byte as ordinary input.
				p.state = stGround
				if c == 0x18 || c == 0x1a {
					i++
				}
			}
		case stCSI, stCSIIgnore:
			switch {
			case c >= 0x20 && c <= 0x3f: // parameter or intermediate
				i++
				if p.state == stCSI {
					p.seq = append(p.seq, c)
					if len(p.seq) > maxCSILen {
						p.state = stCSIIgnore
					}
				}
			case c >= 0x40 && c <= 0x7e: // final
				i++
				if p.state == stCSI {
					p.seq = append(p.seq, c)
					if len(p.seq) <= maxCSILen {
						h.csi(p.seq)
					}
				}
				p.state = stGround
			case c == 0x1b:
				i++
				p.state = stEscape
				p.seq = append(p.seq[:0], c)
			default:
				p.state = stGround
				if c == 0x18 || c == 0x1a {
					i++
				}
			}
		case stString:
			i++
			switch c {
			case 0x07, 0x18, 0x1a:
				p.state = stGround
			case 0x1b:
				p.state = stStringEsc
			}
		case stStringEsc:
			if c == '\\' {
				i++
				p.state = stGround
				continue
			}
			// Another escape sequence starts: the string ends here, as
			// in xterm.
			p.state = stEscape
			p.seq = append(p.seq[:0], 0x1b)
		}
	}
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

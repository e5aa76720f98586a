package sessionlog

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"time"
)

// SkipOptions say what SkipToWith gives back of the events it passes over.
type SkipOptions struct {
	// TailOutput is how much output (bytes of CodeOutput events' data)
	// just before t is wanted in Skipped.Tail: the tail goes back, whole
	// frames of a compressed recording or blocks of whole lines of a plain
	// one, until it holds at least that much, unless the recording has
	// less before t or it would take more than maxTail bytes of lines. 0
	// keeps none.
	TailOutput int
}

// Skipped is what SkipToWith passed over.
type Skipped struct {
	Events int     // how many events it passed over
	Last   float64 // the time of the last of them (0 when none)
	// Tail is the last events passed over, in order (see
	// SkipOptions.TailOutput); it holds all of them when len(Tail) ==
	// Events.
	Tail []Event
	// Resize is the last resize event passed over, nil when there was
	// none: a player's terminal size at t.
	Resize *Event
}

// SkipTo advances r past every event before t, so that Next then returns
// the first event at or after t: the same events, and the same error at
// the same point, as calling Next and discarding the events before t,
// but without parsing most of what lies before t. In a compressed
// recording, a frame is decompressed (its checksum checked) and only its
// last line is parsed: a frame whose last event is before t is passed
// over whole, and the frame that reaches t is read as Next reads it. In a
// plain recording, only the time at the head of each line is parsed,
// never the data. So the lines passed over are not validated beyond that
// (a frame's checksum vouches for what the Writer wrote): a malformed
// line there, which Next would report, is passed over; the first line
// at or after t, the last line of what is there and every frame's own
// damage or torn end are reported as Next reports them.
// SkipTo returns the error Next then returns, except io.EOF (no event at
// or after t), which it leaves to Next.
func (r *Reader) SkipTo(t time.Duration) error {
	_, err := r.SkipToWith(t, SkipOptions{})
	return err
}

// SkipToWith is SkipTo, also giving back what a player needs of the
// events passed over to show the screen at t: the terminal size and the
// output just before t (see SkipOptions, Skipped).
func (r *Reader) SkipToWith(t time.Duration, opt SkipOptions) (Skipped, error) {
	s := skipper{r: r, t: t, tail: tailKeeper{want: opt.TailOutput}}
	err := s.run()
	out := Skipped{Events: s.events, Last: s.last, Tail: s.tail.events(), Resize: s.resize}
	if err == io.EOF {
		err = nil
	}
	return out, err
}

// skipper is one SkipToWith.
type skipper struct {
	r      *Reader
	t      time.Duration
	events int
	last   float64
	tail   tailKeeper
	resize *Event
}

func (s *skipper) before(sec float64) bool { return secondsToDuration(sec) < s.t }

func (s *skipper) run() error {
	r := s.r
	if e := r.pending; e != nil {
		if !s.before(e.Time) {
			return nil
		}
		r.pending = nil
		s.passed(appendEvent(nil, *e), 1, e.Time)
	}
	for {
		if r.err != nil {
			return r.err
		}
		if r.frames != nil && r.br.Buffered() == 0 && len(r.frames.out) == 0 && s.frame() {
			continue
		}
		stop, err := s.line()
		if err != nil || stop {
			return err
		}
	}
}

// frame decodes the next frame and passes over it whole if its last
// event is before t; otherwise it leaves the frame (or the error) to be
// read line by line.
func (s *skipper) frame() bool {
	r, f := s.r, s.r.frames
	if f.err != nil {
		return false
	}
	f.err = f.next()
	if f.err != nil {
		return false
	}
	out := f.out
	body := out[:len(out)-1] // next made sure it ends with a newline
	last := body[bytes.LastIndexByte(body, '\n')+1:]
	e, err := parseEvent(last)
	if err != nil || e.Time < r.last || !s.before(e.Time) || longLine(out) {
		return false // read as Next reads it, which reports what is wrong
	}
	lines := bytes.Count(out, []byte{'\n'})
	r.line += lines
	r.last = e.Time
	s.passed(out, lines, e.Time)
	f.out = f.out[:0]
	return true
}

// longLine reports whether a line of frame is longer than readLine takes.
func longLine(frame []byte) bool {
	for len(frame) > maxLineLen {
		i := bytes.IndexByte(frame, '\n')
		if i+1 > maxLineLen {
			return true
		}
		frame = frame[i+1:]
	}
	return false
}

// line reads one line: passed over when its time, read from its head
// alone, is before t; otherwise parsed as Next parses it, and kept for
// Next when it is at or after t (stop). A line with nothing buffered
// after it is parsed too, since Next tells a torn last line by what
// follows.
func (s *skipper) line() (stop bool, err error) {
	r := s.r
	line, newline, err := r.readLine()
	if err == nil && newline && s.moreBuffered() {
		if sec, ok := leadingTime(line); ok && sec >= r.last && s.before(sec) {
			r.last = sec
			s.passed(append(line, '\n'), 1, sec)
			return false, nil
		}
	}
	e, err := r.event(line, newline, err)
	if err != nil {
		r.err = err
		return true, err
	}
	if !s.before(e.Time) {
		r.pending = &e
		return true, nil
	}
	s.passed(append(line, '\n'), 1, e.Time)
	return false, nil
}

func (s *skipper) moreBuffered() bool {
	return s.r.br.Buffered() > 0 || s.r.frames != nil && len(s.r.frames.out) > 0
}

// passed records lines (whole lines with their newlines, not kept by
// the caller) as passed over, the last of them at time last.
func (s *skipper) passed(lines []byte, n int, last float64) {
	s.events += n
	s.last = last
	s.findResize(lines)
	s.tail.add(lines)
}

// Resize events hold the code "r", which a line's JSON can spell only as
// these two strings (no other escape spells 'r'), and a JSON string's
// content never holds an unescaped quote: lines without them hold no
// resize and need no parsing.
var resizeCodes = [][]byte{[]byte(`"r"`), []byte(`"\u0072"`)}

// findResize parses the lines that may be resize events.
func (s *skipper) findResize(lines []byte) {
	if !bytes.Contains(lines, resizeCodes[0]) && !bytes.Contains(lines, resizeCodes[1]) {
		return
	}
	for line := range bytes.Lines(lines) {
		if !bytes.Contains(line, resizeCodes[0]) && !bytes.Contains(line, resizeCodes[1]) {
			continue
		}
		if e, err := parseEvent(bytes.TrimSuffix(line, []byte{'\n'})); err == nil && e.Code == CodeResize {
			s.resize = &e
		}
	}
}

// leadingTime parses the time at the head of an event line, `[` number
// `,`, without looking at the rest; ok is false when it is not a valid
// event time, for Next to report.
func leadingTime(line []byte) (sec float64, ok bool) {
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '[' {
		return 0, false
	}
	i = skipSpace(line, i+1)
	j := i
	for j < len(line) && numberByte(line[j]) {
		j++
	}
	k := skipSpace(line, j)
	if k >= len(line) || line[k] != ',' || !jsonNumber(line[i:j]) {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(line[i:j]), 64)
	if err != nil || v < 0 || v > maxEventTime {
		return 0, false
	}
	return roundTime(v), true
}

func numberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// jsonNumber reports whether b is a number as JSON spells it (RFC 8259
// section 6): strconv accepts more ("+1", "01", ".5", "1.").
func jsonNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i, n = i+1, n+1
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

// tailKeeper keeps the last blocks of lines passed over, back far enough
// to hold want bytes of output by a bound read without parsing (see
// outputAtLeast), and parses them newest first at the end, only as far
// back as it takes to have want bytes of output.
type tailKeeper struct {
	want   int
	blocks []tailBlock
	size   int // bytes of lines in blocks
	output int // sum of the blocks' output bounds
	cur    []byte
}

type tailBlock struct {
	lines  []byte
	output int // at least this many bytes of output
}

const (
	// tailBlockSize is how many bytes of single lines make one block.
	tailBlockSize = 64 << 10
	// maxTail bounds the lines a tail keeps, whatever it wants.
	maxTail = 16 << 20
)

func (k *tailKeeper) add(lines []byte) {
	if k.want <= 0 {
		return
	}
	k.cur = append(k.cur, lines...)
	if len(k.cur) >= tailBlockSize {
		k.push()
	}
}

func (k *tailKeeper) push() {
	if len(k.cur) == 0 {
		return
	}
	b := tailBlock{lines: k.cur, output: outputAtLeast(k.cur)}
	k.blocks = append(k.blocks, b)
	k.size += len(b.lines)
	k.output += b.output
	k.cur = nil
	for len(k.blocks) > 1 && (k.output-k.blocks[0].output >= k.want || k.size-len(k.blocks[0].lines) >= maxTail) {
		k.size -= len(k.blocks[0].lines)
		k.output -= k.blocks[0].output
		k.cur = k.blocks[0].lines[:0] // the next block reuses its memory
		k.blocks = slices.Delete(k.blocks, 0, 1)
	}
}

// outputAtLeast is a lower bound of the output bytes the lines hold,
// read without parsing them: a line whose code is spelled "o" holds at
// least a sixth of its data's JSON (an escape is at most six bytes for
// one).
func outputAtLeast(lines []byte) int {
	n := 0
	for line := range bytes.Lines(lines) {
		i := bytes.IndexByte(line, ',')
		if i < 0 {
			continue
		}
		rest := line[skipSpace(line, i+1):]
		if bytes.HasPrefix(rest, []byte(`"o"`)) {
			n += max(0, len(rest)-len(`"o", ""]`)-1) / 6
		}
	}
	return n
}

// events parses the blocks kept, newest first, until they hold want
// bytes of output, and gives their events in order; a line that does
// not parse (inside a frame passed over) is left out.
func (k *tailKeeper) events() []Event {
	k.push()
	var parts [][]Event
	output, n := 0, 0
	for i := len(k.blocks) - 1; i >= 0 && output < k.want; i-- {
		var part []Event
		for line := range bytes.Lines(k.blocks[i].lines) {
			if e, err := parseEvent(bytes.TrimSuffix(line, []byte{'\n'})); err == nil {
				part = append(part, e)
				if e.Code == CodeOutput {
					output += len(e.Data)
				}
			}
		}
		parts = append(parts, part)
		n += len(part)
	}
	out := make([]Event, 0, n)
	for i := len(parts) - 1; i >= 0; i-- {
		out = append(out, parts[i]...)
	}
	return out
}

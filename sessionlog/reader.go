package sessionlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// ErrTruncated is returned by Reader.Next when the last line of a recording
// is incomplete or unparseable, as a crash in the middle of a write leaves
// it. All events before it are intact.
var ErrTruncated = errors.New("sessionlog: recording ends with a truncated line")

// Recording is a whole recording in memory.
type Recording struct {
	Header    Header
	Events    []Event
	Truncated bool // the final line was torn (see ErrTruncated)
}

// Length is the time of the last event.
func (r *Recording) Length() time.Duration {
	if len(r.Events) == 0 {
		return 0
	}
	return secondsToDuration(r.Events[len(r.Events)-1].Time)
}

// Reader reads a recording strictly, in either stored format: a sequence
// of zstd frames (what Writer writes by default) or plain asciicast v2
// lines (Uncompressed, and every recording from before compression); it
// tells them apart by the first bytes (the zstd magic 28 B5 2F FD, or the
// header's '{'), never by the file's name. Every line must be a valid
// event, event times must not decrease, and only the end may be torn: the
// last line of a plain recording, or the last frame of a compressed one
// (a *TornFrameError); every complete frame is read whole and its checksum
// checked before any of its events is returned.
type Reader struct {
	br   *bufio.Reader
	h    Header
	line int // number of the last line read, 1-based
	last float64
	err  error // sticky

	frames *frameReader // nil for a plain recording
	// pending is the event SkipTo stopped at, which Next returns first.
	pending *Event
}

// NewReader reads and validates the header: version 2, width and height
// between 1 and 10000.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, 64<<10)}
	head, _ := rd.br.Peek(4)
	if len(head) > 0 && len(head) < 4 && bytes.HasPrefix(zstdMagic[:], head) {
		return nil, fmt.Errorf("read recording: no complete header frame: %w",
			&TornFrameError{Frame: 1, Size: int64(len(head)), Reason: "the file ends inside it"})
	}
	if isCompressed(head) {
		fr, err := newFrameReader(rd.br)
		if err != nil {
			return nil, err
		}
		rd.br = bufio.NewReaderSize(fr, 64<<10)
		rd.frames = fr
	}
	line, _, err := rd.readLine()
	if err == io.EOF && len(line) == 0 {
		return nil, errors.New("read recording: empty, no header")
	}
	if errors.Is(err, ErrTruncated) && len(line) == 0 {
		return nil, fmt.Errorf("read recording: no complete header frame: %w", err)
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read recording header: %w", err)
	}
	h, err := parseHeader(line)
	if err != nil {
		return nil, fmt.Errorf("read recording: line 1: %w", err)
	}
	rd.h = h
	return rd, nil
}

// Header returns the recording's header.
func (r *Reader) Header() Header { return r.h }

// readLine returns the next line without its newline, whether a newline
// ended it, and io.EOF at the end of input.
func (r *Reader) readLine() (line []byte, newline bool, err error) {
	r.line++
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLineLen {
			return nil, false, fmt.Errorf("line %d: longer than %d bytes", r.line, maxLineLen)
		}
		buf = append(buf, chunk...)
		switch err {
		case nil:
			return buf[:len(buf)-1], true, nil
		case bufio.ErrBufferFull:
			continue
		default:
			return buf, false, err
		}
	}
}

// Next returns the next event. At the clean end of the recording it returns
// io.EOF; if the last line is torn it returns ErrTruncated; a malformed line
// elsewhere is an error naming its line number. Errors are sticky.
func (r *Reader) Next() (Event, error) {
	if e := r.pending; e != nil {
		r.pending = nil
		return *e, nil
	}
	if r.err != nil {
		return Event{}, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
		return Event{}, err
	}
	return e, nil
}

func (r *Reader) next() (Event, error) {
	line, newline, err := r.readLine()
	return r.event(line, newline, err)
}

// event turns what readLine returned into the next event, as Next says.
func (r *Reader) event(line []byte, newline bool, err error) (Event, error) {
	if err == io.EOF && len(line) == 0 {
		return Event{}, io.EOF
	}
	if errors.Is(err, ErrTruncated) && len(line) == 0 {
		return Event{}, err // a torn frame, after the last whole one
	}
	if err != nil && err != io.EOF {
		return Event{}, fmt.Errorf("read recording: %w", err)
	}
	// Peek for the end only when the line is not valid JSON: a follower of
	// a live recording must get each complete line without waiting for the
	// next one to be written.
	if !json.Valid(bytes.TrimSpace(line)) {
		last := !newline
		if !last {
			if _, perr := r.br.Peek(1); perr == io.EOF {
				last = true
			}
		}
		if last {
			return Event{}, ErrTruncated
		}
	}
	e, err := parseEvent(line)
	if err != nil {
		return Event{}, fmt.Errorf("read recording: line %d: %w", r.line, err)
	}
	if e.Time < r.last {
		return Event{}, fmt.Errorf("read recording: line %d: event time %v is before the previous event's %v", r.line, e.Time, r.last)
	}
	r.last = e.Time
	return e, nil
}

// ReadAll reads a whole recording. A torn final line is not an error: the
// Recording holds every complete event and Truncated is set.
func ReadAll(r io.Reader) (*Recording, error) {
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	rec := &Recording{Header: rd.Header()}
	for {
		e, err := rd.Next()
		switch {
		case err == nil:
			rec.Events = append(rec.Events, e)
		case err == io.EOF:
			return rec, nil
		case errors.Is(err, ErrTruncated):
			rec.Truncated = true
			return rec, nil
		default:
			return nil, err
		}
	}
}

// secondsToDuration converts event seconds to a Duration, to the
// microsecond precision of the format.
func secondsToDuration(s float64) time.Duration {
	return time.Duration(math.Round(s*1e6)) * time.Microsecond
}

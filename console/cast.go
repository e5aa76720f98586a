package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/sessionlog"
)

// Bounds of a recording window: the browser never holds more than about
// one window, whatever the recording's size.
const (
	// DefaultWindow is the recording time one window covers unless asked.
	DefaultWindow = 60.0
	// MaxWindow bounds window=.
	MaxWindow = 600.0
	// MaxWindowBytes ends a window early once this much output is in it.
	MaxWindowBytes = 4 << 20
	// PreludeBytes is how much of the output before a window's start is
	// replayed at its time 0 to rebuild the screen: several screenfuls.
	PreludeBytes = 128 << 10
	// ctxEvery is how many events a window cut reads between checks that
	// its request still wants it (a seek far into a long recording reads
	// millions; an abandoned one must stop).
	ctxEvery = 1024
)

// Window is one stretch of a recording as asciicast v2, with times
// relative to From and the terminal state at From rebuilt by a prelude.
type Window struct {
	From float64 // recording time of the window's time 0
	// End is where the next window starts: the time of the first event
	// not in this one, or the recording's end (EOF true).
	End float64
	EOF bool
	// Truncated: the recording's last line is torn (a live recording
	// mid-write, or a crash).
	Truncated bool
}

// WriteWindow reads a recording through sessionlog's reader and writes the
// window [from, from+window) to w as asciicast v2: the header, then the
// sanitized output of the last PreludeBytes before from as one event at
// time 0 (so the screen looks as it did at from), then output, resize and
// marker events (input is never sent: it holds what was typed at
// no-echo prompts) with times minus from, all output through one
// sessionlog.Sanitizer, as jit replay does. It stops after MaxWindowBytes
// of output at an event time boundary.
func WriteWindow(w io.Writer, rec io.Reader, from, window float64) (Window, error) {
	c, err := newCursor(rec)
	if err != nil {
		return Window{}, err
	}
	return c.window(context.Background(), w, from, window)
}

// cursor is a recording read up to a point: what a window needs of the
// past (prelude, terminal size) and the next event. The server keeps the
// cursor of a player's last window, so that the next window (playback
// goes forward) and a seek forward read on from there instead of from
// the start.
type cursor struct {
	rd            *sessionlog.Reader
	closer        io.Closer
	h             sessionlog.Header
	pre           prelude
	width, height int
	next          *sessionlog.Event
	consumed      bool    // some event was consumed
	last          float64 // time of the last consumed event
	eof, torn     bool
}

func newCursor(rec io.Reader) (*cursor, error) {
	rd, err := sessionlog.NewReader(rec)
	if err != nil {
		return nil, err
	}
	h := rd.Header()
	return &cursor{rd: rd, h: h, width: h.Width, height: h.Height}, nil
}

// usableFor reports whether a window at from can start from c: nothing at
// or after from has been consumed.
func (c *cursor) usableFor(from float64) bool {
	return !c.eof && (!c.consumed || c.last < from)
}

// peek returns the next event, or nil at the end of what is written.
func (c *cursor) peek() (*sessionlog.Event, error) {
	if c.next != nil || c.eof {
		return c.next, nil
	}
	e, err := c.rd.Next()
	if errors.Is(err, io.EOF) || errors.Is(err, sessionlog.ErrTruncated) {
		c.eof, c.torn = true, errors.Is(err, sessionlog.ErrTruncated)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.next = &e
	return c.next, nil
}

// consume takes the next event into the past.
func (c *cursor) consume() sessionlog.Event {
	e := *c.next
	c.next, c.consumed, c.last = nil, true, e.Time
	switch e.Code {
	case sessionlog.CodeOutput:
		c.pre.add(e.Data)
	case sessionlog.CodeResize:
		if cols, rows, ok := parseSize(e.Data); ok {
			c.width, c.height = cols, rows
		}
	}
	return e
}

// window writes [from, from+window) as WriteWindow says; c must be usable
// for from. It stops with ctx's error once ctx is done.
func (c *cursor) window(ctx context.Context, w io.Writer, from, window float64) (Window, error) {
	c.skipTo(ctx, from)
	for n := 1; ; n++ {
		if n%ctxEvery == 0 && ctx.Err() != nil {
			return Window{From: from}, ctx.Err()
		}
		e, err := c.peek()
		if err != nil {
			return Window{From: from}, err
		}
		if e == nil || e.Time >= from {
			break
		}
		c.consume()
	}
	out := bufio.NewWriterSize(w, 64<<10)
	if err := writeHeader(out, c.h, c.width, c.height, &c.pre); err != nil {
		return Window{From: from}, err
	}
	win := Window{From: from}
	var san sessionlog.Sanitizer
	bytes, lastIncluded := 0, -1.0
	for n := 1; ; n++ {
		if n%ctxEvery == 0 && ctx.Err() != nil {
			return win, ctx.Err()
		}
		next, err := c.peek()
		if err != nil {
			return win, err
		}
		if next == nil {
			win.EOF, win.Truncated, win.End = true, c.torn, math.Max(from, lastIncluded)
			break
		}
		if next.Time >= from+window || bytes >= MaxWindowBytes && next.Time > lastIncluded {
			win.End = next.Time
			break
		}
		e := c.consume()
		lastIncluded = e.Time
		switch e.Code {
		case sessionlog.CodeOutput:
			e.Data = san.Filter(e.Data)
			bytes += len(e.Data)
		case sessionlog.CodeMarker:
			e.Data = sessionlog.Sanitize(e.Data)
		case sessionlog.CodeResize:
		default:
			continue
		}
		e.Time -= from
		line, err := json.Marshal(e)
		if err != nil {
			return win, err
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	return win, out.Flush()
}

func writeHeader(out *bufio.Writer, h sessionlog.Header, width, height int, pre *prelude) error {
	hdr, err := json.Marshal(map[string]any{"version": 2, "width": width, "height": height})
	if err != nil {
		return err
	}
	out.Write(hdr)
	out.WriteByte('\n')
	if p := pre.text(); p != "" {
		line, err := json.Marshal(sessionlog.Event{Time: 0, Code: sessionlog.CodeOutput, Data: p})
		if err != nil {
			return err
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	return nil
}

// prelude keeps the last PreludeBytes of output, whole events where it
// can.
type prelude struct {
	chunks []string
	size   int
}

func (p *prelude) add(s string) {
	p.chunks = append(p.chunks, s)
	p.size += len(s)
	for p.size > PreludeBytes && len(p.chunks) > 1 {
		p.size -= len(p.chunks[0])
		p.chunks = p.chunks[1:]
	}
	if p.size > 2*PreludeBytes { // one huge event: keep its tail
		s := p.chunks[0]
		cut := len(s) - PreludeBytes
		for cut < len(s) && !utf8.RuneStart(s[cut]) {
			cut++
		}
		p.chunks[0], p.size = s[cut:], len(s)-cut
	}
}

// text is the prelude sanitized on its own: it starts mid-stream, so a
// cut escape sequence at its head is dropped, not shown.
func (p *prelude) text() string {
	var san sessionlog.Sanitizer
	var b []byte
	for _, c := range p.chunks {
		b = append(b, san.Filter(c)...)
	}
	return string(append(b, san.Flush()...))
}

func parseSize(s string) (int, int, bool) {
	var c, r int
	for i := 0; i < len(s); i++ {
		if s[i] == 'x' {
			c1, e1 := strconv.Atoi(s[:i])
			r1, e2 := strconv.Atoi(s[i+1:])
			c, r = c1, r1
			return c, r, e1 == nil && e2 == nil && c > 0 && r > 0 && c <= 10000 && r <= 10000
		}
	}
	return 0, 0, false
}

// serveWindow answers a window request: from= and window= in seconds;
// X-Jit-Window-End, X-Jit-Window-EOF and X-Jit-Session-Live tell the
// page's script where the next window starts.
func (s *Server) serveWindow(w http.ResponseWriter, r *http.Request, x audit.Session) error {
	from, err := queryFloat(r, "from", 0, 0, math.MaxInt32)
	if err != nil {
		return err
	}
	window, err := queryFloat(r, "window", DefaultWindow, 1, MaxWindow)
	if err != nil {
		return err
	}
	key := r.URL.Query().Get("view") + "|" + x.ID
	ctx, done := s.cursors.begin(r.Context(), key)
	defer done()
	c, err := s.cursors.take(key, from, func() (*cursor, error) {
		f, err := s.cfg.Recordings.Open(x.RecordingPath)
		if err != nil {
			return nil, &grant.Error{Kind: grant.KindNotFound, Code: grant.CodeNoRecording, Message: "the recording of session " + x.ID + " cannot be opened", Err: err}
		}
		c, err := newCursor(f)
		if err != nil {
			f.Close()
			return nil, &grant.Error{Kind: grant.KindUnavailable, Code: "recording_unreadable", Message: "the recording of session " + x.ID + " cannot be read", Err: err}
		}
		c.closer = f
		return c, nil
	})
	if err != nil {
		return err
	}
	// The window is built whole before a byte is sent, so that its
	// bounds can go in the headers; MaxWindowBytes bounds it.
	var buf bufferWriter
	win, err := c.window(ctx, &buf, from, window)
	s.cursors.put(key, c, err == nil && !win.EOF)
	if ctx.Err() != nil {
		// A newer window of this page (a seek) or the client's going away
		// ended this one: nobody reads its answer.
		return &grant.Error{Kind: grant.KindConflict, Code: "window_superseded", Message: "a newer window request of this player replaced this one", Err: err}
	}
	if err != nil {
		return &grant.Error{Kind: grant.KindUnavailable, Code: "recording_unreadable", Message: "the recording of session " + x.ID + " cannot be read", Err: err}
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-asciicast; charset=utf-8")
	h.Set("X-Jit-Window-End", strconv.FormatFloat(win.End, 'f', 6, 64))
	h.Set("X-Jit-Window-EOF", strconv.FormatBool(win.EOF))
	h.Set("X-Jit-Session-Live", strconv.FormatBool(x.EndedAt.IsZero()))
	_, _ = w.Write(buf.b)
	return nil
}

type bufferWriter struct{ b []byte }

func (b *bufferWriter) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }

func queryFloat(r *http.Request, name string, def, lo, hi float64) (float64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		return 0, &grant.Error{Kind: grant.KindInvalid, Code: "bad_" + name, Message: name + " " + strconv.Quote(audit.BoundText(v, 32)) + " must be a number of seconds from " + strconv.FormatFloat(lo, 'f', -1, 64) + " to " + strconv.FormatFloat(hi, 'f', -1, 64)}
	}
	return f, nil
}

package sessionlog

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrClosed is returned by Writer methods called after Close.
var ErrClosed = errors.New("sessionlog: writer is closed")

// WriterOptions configures a Writer. The zero value is usable.
type WriterOptions struct {
	// Clock gives event times; nil means time.Now. Offsets are measured
	// from the Clock's reading when the Writer is created and never go
	// backwards, even if the clock does.
	Clock func() time.Time
	// SyncInterval is how often buffered events are flushed and synced;
	// 0 means one second. A crash loses at most about this much.
	SyncInterval time.Duration
	// OnLine, if set, is called with each completed non-empty line of
	// output or input text (escape sequences stripped) and each marker,
	// for search indexing. It is called with the Writer's lock held, so it
	// must be quick and must not call the Writer.
	OnLine func(Line)
}

// Line is a line of text seen in a recording.
type Line struct {
	Offset time.Duration // when the line started, from the start of the recording
	Kind   string        // CodeOutput, CodeInput or CodeMarker
	Text   string        // plain text: escapes stripped, trailing blanks trimmed
}

// Summary describes a finished recording.
type Summary struct {
	Size     int64         // bytes written, header included
	SHA256   string        // hex SHA-256 of the bytes written: the whole file
	Events   int64         // event lines written
	Duration time.Duration // from the start to Close
	BytesOut int64         // bytes passed to Output
	BytesIn  int64         // bytes passed to Input
}

// syncer is what an io.Writer offers if it can make its data durable.
type syncer interface{ Sync() error }

// Writer records a session as asciicast v2. All methods are safe for
// concurrent use. The first write, flush or sync error is sticky: every
// later call returns it, and callers are expected to end the session
// (record or refuse).
//
// Events are buffered and a background goroutine flushes and syncs them at
// most every SyncInterval; Close stops it. Complete lines are only ever
// appended, so a crash leaves a file whose complete lines all play.
type Writer struct {
	mu       sync.Mutex
	clock    func() time.Time
	start    time.Time
	last     time.Duration // latest event offset; offsets never decrease
	cw       *countingWriter
	bw       *bufio.Writer
	sync     syncer    // nil if the destination cannot sync
	file     io.Closer // the file Create opened, closed by Close
	err      error     // sticky
	closed   bool
	dirty    bool // buffered data not yet synced
	outCarry []byte
	inCarry  []byte
	onLine   func(Line)
	outLines *lineStream
	inLines  *lineStream
	sum      Summary
	closeErr error
	scratch  []byte

	stop chan struct{}
	done chan struct{}
}

// lineStream turns one direction's text into Lines for OnLine.
type lineStream struct {
	p  ansiParser
	lb lineBuilder
}

// countingWriter counts and hashes what reached the destination.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// Create creates a new recording file at path (it must not exist; mode
// 0600), writes the header and syncs it and the directory entry. Close
// closes the file.
func Create(path string, h Header, opts WriterOptions) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create recording: %w", err)
	}
	w, err := newWriter(f, h, opts, f)
	if err == nil {
		err = syncDir(filepath.Dir(path))
		if err != nil {
			_, _ = w.Close()
		}
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("create recording %q: %w", path, err)
	}
	return w, nil
}

// syncDir makes a newly created file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

// NewWriter starts a recording on w: it validates and writes the header
// (Version 0 means 2; Timestamp 0 means the Clock's current Unix time),
// flushes it, and syncs it if w has a Sync() error method, as it then does
// on every periodic flush. Sync may be called concurrently with Write, as
// *os.File allows. NewWriter does not close w.
func NewWriter(w io.Writer, h Header, opts WriterOptions) (*Writer, error) {
	return newWriter(w, h, opts, nil)
}

func newWriter(dst io.Writer, h Header, opts WriterOptions, file io.Closer) (*Writer, error) {
	if opts.SyncInterval < 0 {
		return nil, fmt.Errorf("sync interval %v: must not be negative", opts.SyncInterval)
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if h.Version == 0 {
		h.Version = 2
	}
	start := opts.Clock()
	if h.Timestamp == 0 {
		h.Timestamp = start.Unix()
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	line, err := marshalHeader(h)
	if err != nil {
		return nil, err
	}
	cw := &countingWriter{w: dst, h: sha256.New()}
	w := &Writer{
		clock:  opts.Clock,
		start:  start,
		cw:     cw,
		bw:     bufio.NewWriterSize(cw, 64<<10),
		file:   file,
		onLine: opts.OnLine,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	w.sync, _ = dst.(syncer)
	if w.onLine != nil {
		w.outLines = w.newLineStream(CodeOutput)
		w.inLines = w.newLineStream(CodeInput)
	}
	w.bw.Write(line)
	w.bw.WriteByte('\n')
	if err := w.bw.Flush(); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	if w.sync != nil {
		if err := w.sync.Sync(); err != nil {
			return nil, fmt.Errorf("sync header: %w", err)
		}
	}
	go w.syncLoop(opts.SyncInterval)
	return w, nil
}

func (w *Writer) newLineStream(kind string) *lineStream {
	ls := &lineStream{}
	ls.lb.input = kind == CodeInput
	ls.lb.emit = func(text string, start time.Duration) {
		if strings.TrimSpace(text) == "" {
			return
		}
		w.onLine(Line{Offset: start, Kind: kind, Text: strings.TrimRight(text, " \t")})
	}
	return ls
}

// syncLoop flushes and syncs buffered events every interval until Close.
func (w *Writer) syncLoop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.periodicSync()
		}
	}
}

func (w *Writer) periodicSync() {
	w.mu.Lock()
	if w.err != nil || !w.dirty {
		w.mu.Unlock()
		return
	}
	w.dirty = false
	if err := w.bw.Flush(); err != nil {
		w.fail(fmt.Errorf("flush recording: %w", err))
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	if w.sync == nil {
		return
	}
	// Sync without the lock: an fsync may take long, and the session's
	// output must not stall behind it.
	if err := w.sync.Sync(); err != nil {
		w.mu.Lock()
		w.fail(fmt.Errorf("sync recording: %w", err))
		w.mu.Unlock()
	}
}

// fail records the first error. Callers hold mu.
func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// usable reports why the Writer cannot take an event. Callers hold mu.
func (w *Writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	return nil
}

// offset is the current event offset. Callers hold mu.
func (w *Writer) offset() time.Duration {
	d := w.clock().Sub(w.start)
	if d < w.last {
		d = w.last
	}
	w.last = d
	return d
}

// Output records p as terminal output. A UTF-8 character split at the end
// of p is held back until the next Output call.
func (w *Writer) Output(p []byte) error {
	return w.text(CodeOutput, p)
}

// Input records p as typed input, with its own carry for split characters.
// Input may contain passwords typed at prompts that do not echo.
func (w *Writer) Input(p []byte) error {
	return w.text(CodeInput, p)
}

func (w *Writer) text(code string, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	carry, lines := &w.outCarry, w.outLines
	if code == CodeInput {
		carry, lines = &w.inCarry, w.inLines
		w.sum.BytesIn += int64(len(p))
	} else {
		w.sum.BytesOut += int64(len(p))
	}
	var data string
	data, *carry = splitUTF8(*carry, p)
	if data == "" {
		return nil
	}
	off := w.offset()
	w.writeText(off, code, data)
	if lines != nil {
		lines.lb.now = off
		lines.p.feed(data, &lines.lb)
	}
	return w.err
}

// splitUTF8 prepends carry to p and splits off an incomplete (but so far
// valid) UTF-8 character at the end, returned as the new carry. Invalid
// bytes stay in data; the JSON encoder replaces each with U+FFFD.
func splitUTF8(carry, p []byte) (data string, newCarry []byte) {
	b := p
	if len(carry) > 0 {
		b = append(carry, p...)
	}
	cut := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if b[i] < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	data = string(b[:cut])
	return data, append(carry[:0], b[cut:]...)
}

// writeText writes data as events of at most maxEventData bytes each,
// cutting only between characters. Callers hold mu.
func (w *Writer) writeText(off time.Duration, code, data string) {
	for data != "" {
		n := len(data)
		if n > maxEventData {
			n = maxEventData
			for n > 0 && !utf8.RuneStart(data[n]) {
				n--
			}
			if n == 0 {
				n = maxEventData
			}
		}
		w.writeEvent(Event{Time: off.Seconds(), Code: code, Data: data[:n]})
		data = data[n:]
	}
}

// writeEvent buffers one event line. Callers hold mu.
func (w *Writer) writeEvent(e Event) {
	w.scratch = appendEvent(w.scratch[:0], e)
	w.scratch = append(w.scratch, '\n')
	if _, err := w.bw.Write(w.scratch); err != nil {
		w.fail(fmt.Errorf("write recording: %w", err))
		return
	}
	w.sum.Events++
	w.dirty = true
}

// Resize records a terminal size change.
func (w *Writer) Resize(width, height int) error {
	if width < 1 || width > maxDimension || height < 1 || height > maxDimension {
		return fmt.Errorf("resize %dx%d: each must be between 1 and %d", width, height, maxDimension)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	w.writeEvent(Event{Time: w.offset().Seconds(), Code: CodeResize,
		Data: strconv.Itoa(width) + "x" + strconv.Itoa(height)})
	return w.err
}

// Marker records a marker with a label (which may be empty); players show
// markers as points to jump to.
func (w *Writer) Marker(label string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	label = strings.ToValidUTF8(label, "\uFFFD")
	off := w.offset()
	w.writeEvent(Event{Time: off.Seconds(), Code: CodeMarker, Data: label})
	if w.onLine != nil && w.err == nil {
		w.onLine(Line{Offset: off, Kind: CodeMarker, Text: label})
	}
	return w.err
}

// Err returns the first write, flush or sync error, or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close writes any held-back bytes of a split character (as U+FFFD),
// reports partial lines to OnLine, flushes and syncs, stops the background
// goroutine and closes the file if Create opened it. It returns the
// recording's Summary and the first error of the recording's life. Calling
// Close again returns the same results.
func (w *Writer) Close() (Summary, error) {
	w.mu.Lock()
	if w.closed {
		defer w.mu.Unlock()
		return w.sum, w.closeErr
	}
	w.closed = true
	w.mu.Unlock()

	close(w.stop)
	<-w.done

	w.mu.Lock()
	defer w.mu.Unlock()
	off := w.offset()
	if w.err == nil {
		for _, c := range []struct {
			code  string
			carry []byte
			lines *lineStream
		}{{CodeOutput, w.outCarry, w.outLines}, {CodeInput, w.inCarry, w.inLines}} {
			if len(c.carry) > 0 {
				w.writeText(off, c.code, string(c.carry))
			}
			if c.lines != nil {
				c.lines.lb.now = off
				c.lines.p.feed(string(c.carry), &c.lines.lb)
				c.lines.p.flush(&c.lines.lb)
				c.lines.lb.end()
			}
		}
		w.outCarry, w.inCarry = nil, nil
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.fail(fmt.Errorf("flush recording: %w", err))
		}
	}
	if w.err == nil && w.sync != nil {
		if err := w.sync.Sync(); err != nil {
			w.fail(fmt.Errorf("sync recording: %w", err))
		}
	}
	if w.file != nil {
		if err := w.file.Close(); err != nil {
			w.fail(fmt.Errorf("close recording: %w", err))
		}
	}
	w.sum.Size = w.cw.n
	w.sum.SHA256 = hex.EncodeToString(w.cw.h.Sum(nil))
	w.sum.Duration = off
	w.closeErr = w.err
	return w.sum, w.closeErr
}

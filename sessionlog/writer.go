package sessionlog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
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
	// for search indexing, in recording order. Binary output is not
	// passed to it. It is called from the Writer's encoding goroutine, so
	// it must be quick (it delays recording, and so the session, once the
	// queue is full) and must not call the Writer.
	OnLine func(Line)
	// OnError, if set, is called once with the Writer's first write,
	// flush or sync error, from the goroutine that met it, so that a
	// session can be ended at once rather than on its next event. It must
	// not call Close.
	OnError func(error)
	// QueueSize bounds how many bytes of events may wait to be encoded;
	// 0 means 4 MiB. Output, Input, Resize and Marker block while the
	// queue is full (back-pressure: nothing is dropped).
	QueueSize int
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

const (
	// defaultQueueSize is the default bound on bytes waiting to be encoded:
	// enough to absorb a few reads of a fast stream while the encoder is
	// busy, small against a session's memory.
	defaultQueueSize = 4 << 20
	// writeBufferSize is the buffered writer in front of the destination.
	// It lives as long as the session, so it stays small enough for idle
	// sessions; a binary event (maxBinaryData as base64) still fits.
	writeBufferSize = 64 << 10
	// kickShare: the encoder is woken once 1/kickShare of the queue is
	// filled, so that it works in parallel with a busy session while
	// leaving room to queue more.
	kickShare = 16
)

// Writer records a session as asciicast v2. All methods are safe for
// concurrent use.
//
// Output, Input, Resize and Marker stamp the event with the Clock, copy it
// into a bounded queue and return; one encoding goroutine per Writer turns
// queued events into JSON lines, hashes and writes them, and calls OnLine.
// When the queue is full the callers block until the encoder catches up:
// nothing is dropped. A flush of the buffered lines and a sync of the
// destination follow at most every SyncInterval; Close drains the queue,
// flushes, syncs and stops both goroutines.
//
// The first write, flush or sync error is sticky: every later call returns
// it (Output and the others return it once the encoder has met it, so a
// failure surfaces on a later call or on Err), and callers are expected to
// end the session (record or refuse). Events still queued when the error
// happened are lost with the rest of the unwritten recording.
//
// Complete lines are only ever appended, so a crash leaves a file whose
// complete lines all play.
type Writer struct {
	mu       sync.Mutex
	space    *sync.Cond // signalled when queued bytes are encoded or on failure
	clock    func() time.Time
	start    time.Time
	last     time.Duration // latest event offset; offsets never decrease
	err      error         // sticky
	closed   bool
	queue    []item
	slab     []byte // the queued items' data, one after the other
	queued   int    // bytes of queue data
	maxQueue int
	sum      Summary // BytesOut and BytesIn under mu; the rest by the encoder
	closeErr error

	kick     chan struct{} // wakes the encoder; capacity 1
	done     chan struct{} // closed when the encoder has drained and exited
	syncKick chan struct{} // asks the sync goroutine for a sync; capacity 1
	syncStop chan struct{}
	syncDone chan struct{}
	closedCh chan struct{} // closed when Close has finished
	onError  func(error)

	// Owned by the encoder goroutine, then by Close once it has exited.
	enc encoder
}

// item is one queued event.
type item struct {
	code       string        // CodeOutput, CodeInput, CodeResize or CodeMarker
	off        time.Duration // when it happened
	start, end int           // output or input bytes: slab[start:end]
	text       string        // resize data or marker label
}

// encoder is the state of the encoding goroutine.
type encoder struct {
	cw       *countingWriter
	bw       *bufio.Writer
	sync     syncer    // nil if the destination cannot sync
	file     io.Closer // the file Create opened, closed by Close
	onLine   func(Line)
	out, in  textStream
	dirty    bool // data written since the last flush
	failed   bool // a copy of err != nil, so the encoder skips work
	events   int64
	scratch  []byte
	joinBuff []byte
}

// textStream is one direction's text state: the UTF-8 carry and the
// search line builder.
type textStream struct {
	code, binCode string
	carry         []byte
	binary        bool        // the last chunk was binary
	lines         *lineStream // nil without OnLine
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
// after every periodic flush. Sync may be called concurrently with Write,
// as *os.File allows. NewWriter does not close w.
func NewWriter(w io.Writer, h Header, opts WriterOptions) (*Writer, error) {
	return newWriter(w, h, opts, nil)
}

func newWriter(dst io.Writer, h Header, opts WriterOptions, file io.Closer) (*Writer, error) {
	if opts.SyncInterval < 0 {
		return nil, fmt.Errorf("sync interval %v: must not be negative", opts.SyncInterval)
	}
	if opts.QueueSize < 0 {
		return nil, fmt.Errorf("queue size %d: must not be negative", opts.QueueSize)
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = time.Second
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = defaultQueueSize
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
		clock:    opts.Clock,
		start:    start,
		maxQueue: opts.QueueSize,
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		syncKick: make(chan struct{}, 1),
		syncStop: make(chan struct{}),
		syncDone: make(chan struct{}),
		closedCh: make(chan struct{}),
		onError:  opts.OnError,
		enc: encoder{
			cw:     cw,
			bw:     bufio.NewWriterSize(cw, writeBufferSize),
			file:   file,
			onLine: opts.OnLine,
			out:    textStream{code: CodeOutput, binCode: CodeBinaryOutput},
			in:     textStream{code: CodeInput, binCode: CodeBinaryInput},
		},
	}
	w.space = sync.NewCond(&w.mu)
	w.enc.sync, _ = dst.(syncer)
	if w.enc.onLine != nil {
		w.enc.out.lines = w.newLineStream(CodeOutput)
		w.enc.in.lines = w.newLineStream(CodeInput)
	}
	w.enc.bw.Write(line)
	w.enc.bw.WriteByte('\n')
	if err := w.enc.bw.Flush(); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	if w.enc.sync != nil {
		if err := w.enc.sync.Sync(); err != nil {
			return nil, fmt.Errorf("sync header: %w", err)
		}
	}
	go w.encodeLoop(opts.SyncInterval)
	go w.syncLoop()
	return w, nil
}

func (w *Writer) newLineStream(kind string) *lineStream {
	ls := &lineStream{}
	ls.lb.input = kind == CodeInput
	ls.lb.emit = func(text string, start time.Duration) {
		if strings.TrimSpace(text) == "" {
			return
		}
		w.enc.onLine(Line{Offset: start, Kind: kind, Text: strings.TrimRight(text, " \t")})
	}
	return ls
}

// encodeLoop encodes queued events until Close. It is woken when a
// sizeable amount is queued (kickAt), when a caller waits for space, at
// Close, and every interval, when it encodes what is queued and flushes:
// events are only visible in the file after a flush anyway, and encoding
// in batches saves a wake-up per event. The sync goroutine then makes the
// flushed data durable.
func (w *Writer) encodeLoop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	// The queue and its slab are double-buffered: callers fill one pair
	// while the encoder works through the other.
	var batch []item
	var slab []byte
	due := false // a flush is due
	for {
		w.mu.Lock()
		batch, w.queue = w.queue, batch[:0]
		slab, w.slab = w.slab, slab[:0]
		closing := w.closed
		w.enc.failed = w.err != nil
		w.mu.Unlock()
		took := len(batch) > 0
		if took {
			w.encodeBatch(batch, slab)
		}
		if due {
			w.flush()
			due = false
			if !took {
				// Idle for an interval: let the buffers go, so that an
				// idle session keeps no burst-sized queue.
				batch, slab = nil, nil
				w.mu.Lock()
				if len(w.queue) == 0 {
					w.queue, w.slab = nil, nil
				}
				w.mu.Unlock()
			}
		}
		if took {
			// A busy stream may never leave the queue empty: flush on
			// time all the same.
			select {
			case <-t.C:
				due = true
			default:
			}
			continue
		}
		if closing {
			return
		}
		select {
		case <-w.kick:
		case <-t.C:
			due = true
		}
	}
}

// encodeBatch encodes batch, whose data is in slab, then gives its share
// of the queue back, waking callers that wait for space.
func (w *Writer) encodeBatch(batch []item, slab []byte) {
	for i := range batch {
		w.encode(&batch[i], slab[batch[i].start:batch[i].end])
		batch[i] = item{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queued -= len(slab)
	w.space.Broadcast()
}

// wake asks the encoder to run now rather than at its next tick.
func (w *Writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default: // already asked
	}
}

// flush writes buffered lines to the destination and asks for a sync.
// Only the encoder calls it.
func (w *Writer) flush() {
	e := &w.enc
	if e.failed || !e.dirty {
		return
	}
	e.dirty = false
	if err := e.bw.Flush(); err != nil {
		e.failed = true
		w.fail(fmt.Errorf("flush recording: %w", err))
		return
	}
	if e.sync != nil {
		select {
		case w.syncKick <- struct{}{}:
		default: // a sync is pending and will cover this flush too
		}
	}
}

// syncLoop syncs the destination when asked. It runs apart from the
// encoder: an fsync may take long, and encoding must not stall behind it.
func (w *Writer) syncLoop() {
	defer close(w.syncDone)
	for {
		select {
		case <-w.syncStop:
			return
		case <-w.syncKick:
			if err := w.enc.sync.Sync(); err != nil {
				w.fail(fmt.Errorf("sync recording: %w", err))
			}
		}
	}
}

// fail records the first error, wakes callers blocked on a full queue and
// reports the error to OnError.
func (w *Writer) fail(err error) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = err
	}
	w.space.Broadcast()
	w.mu.Unlock()
	if first && w.onError != nil {
		w.onError(err)
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

// enqueue stamps and queues an event, blocking while the queue is full.
// data is copied. Callers hold mu.
func (w *Writer) enqueue(it item, data []byte) error {
	size := len(data) + len(it.text)
	for w.queued > 0 && w.queued+size > w.maxQueue && w.err == nil && !w.closed {
		w.wake()
		w.space.Wait()
	}
	if err := w.usable(); err != nil {
		return err
	}
	it.start = len(w.slab)
	w.slab = append(w.slab, data...)
	it.end = len(w.slab)
	it.off = w.offset()
	w.queue = append(w.queue, it)
	w.queued += len(data)
	if w.queued >= w.maxQueue/kickShare {
		w.wake()
	}
	return nil
}

// Output records p as terminal output. A UTF-8 character split at the end
// of p is held back until the next Output call. Output that is not text
// (see CodeBinaryOutput) is recorded byte for byte as base64.
func (w *Writer) Output(p []byte) error {
	return w.text(CodeOutput, p)
}

// Input records p as typed input, with its own carry for split characters
// and the same rule for binary data (CodeBinaryInput). Input may contain
// passwords typed at prompts that do not echo.
func (w *Writer) Input(p []byte) error {
	return w.text(CodeInput, p)
}

func (w *Writer) text(code string, p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if code == CodeInput {
		w.sum.BytesIn += int64(len(p))
	} else {
		w.sum.BytesOut += int64(len(p))
	}
	if len(p) == 0 {
		return nil
	}
	return w.enqueue(item{code: code}, p)
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
	return w.enqueue(item{code: CodeResize, text: strconv.Itoa(width) + "x" + strconv.Itoa(height)}, nil)
}

// Marker records a marker with a label (which may be empty); players show
// markers as points to jump to.
func (w *Writer) Marker(label string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	return w.enqueue(item{code: CodeMarker, text: strings.ToValidUTF8(label, "\uFFFD")}, nil)
}

// Err returns the first write, flush or sync error, or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// encode writes one queued event. Only the encoder (or Close, after it)
// calls it.
func (w *Writer) encode(it *item, data []byte) {
	e := &w.enc
	if e.failed {
		return
	}
	switch it.code {
	case CodeOutput:
		w.encodeText(&e.out, it.off, data)
	case CodeInput:
		w.encodeText(&e.in, it.off, data)
	case CodeMarker:
		w.writeEvent(Event{Time: it.off.Seconds(), Code: CodeMarker, Data: it.text})
		if e.onLine != nil && !e.failed {
			e.onLine(Line{Offset: it.off, Kind: CodeMarker, Text: it.text})
		}
	default:
		w.writeEvent(Event{Time: it.off.Seconds(), Code: it.code, Data: it.text})
	}
}

// encodeText writes p, after the stream's carry, as a text event (holding
// back a split character) or, if it is not text, as a binary event.
func (w *Writer) encodeText(ts *textStream, off time.Duration, p []byte) {
	e := &w.enc
	b := p
	if len(ts.carry) > 0 {
		e.joinBuff = append(append(e.joinBuff[:0], ts.carry...), p...)
		b = e.joinBuff
	}
	// A character split at the end is carried in binary data too, so that
	// text after binary data starts on a whole character.
	cut := utf8Cut(b)
	chunk := b[:cut]
	// Binary is decided while the text is escaped, which looks at every
	// byte anyway; a NUL is found faster beforehand.
	ts.binary = bytes.IndexByte(chunk, 0) >= 0
	var data string
	if !ts.binary && len(chunk) > 0 {
		data = string(chunk)
		lines, n, odd := appendTextEvents(e.scratch[:0], off, ts.code, data)
		e.scratch = lines
		ts.binary = binaryShareExceeded(odd, len(chunk))
		if !ts.binary {
			w.writeLines(lines, n)
		}
	}
	if ts.binary {
		w.writeBinary(off, ts.binCode, chunk)
	}
	ts.carry = append(ts.carry[:0], b[cut:]...)
	if ts.binary || data == "" {
		return
	}
	if ts.lines != nil {
		ts.lines.lb.now = off
		ts.lines.p.feed(data, &ts.lines.lb)
	}
}

// utf8Cut returns where an incomplete (but so far valid) UTF-8 character
// at the end of b starts, or len(b). Invalid bytes stay in the text; the
// JSON encoder replaces each with U+FFFD.
func utf8Cut(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if b[i] < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

const (
	// binaryMinLen is the shortest chunk judged by its share of odd
	// bytes; shorter ones are binary only if they hold a NUL, so that a
	// stray invalid byte or control in interactive output stays text.
	binaryMinLen = 64
	// binaryShare: a chunk with more than 1 in binaryShare bytes that
	// are invalid UTF-8 or unusual C0 controls is binary.
	binaryShare = 8
)

// binaryShareExceeded reports whether odd of n bytes make a chunk binary.
func binaryShareExceeded(odd, n int) bool {
	return n >= binaryMinLen && odd > n/binaryShare
}

// writeText writes data as text events.
func (w *Writer) writeText(off time.Duration, code, data string) {
	e := &w.enc
	lines, n, _ := appendTextEvents(e.scratch[:0], off, code, data)
	e.scratch = lines
	w.writeLines(lines, n)
}

// appendTextEvents appends data as n event lines of at most maxEventData
// bytes of data each, cut only between characters, and counts its odd
// bytes (see appendJSONText).
func appendTextEvents(dst []byte, off time.Duration, code, data string) (_ []byte, n, odd int) {
	for data != "" {
		size := len(data)
		if size > maxEventData {
			size = maxEventData
			for size > 0 && !utf8.RuneStart(data[size]) {
				size--
			}
			if size == 0 {
				size = maxEventData
			}
		}
		var o int
		dst = appendEventPrefix(dst, off.Seconds(), code)
		dst, o = appendJSONText(dst, data[:size])
		dst = append(dst, ']', '\n')
		odd += o
		n++
		data = data[size:]
	}
	return dst, n, odd
}

// writeBinary writes b as base64 events of at most maxBinaryData bytes of
// data each.
func (w *Writer) writeBinary(off time.Duration, code string, b []byte) {
	e := &w.enc
	for len(b) > 0 && !e.failed {
		n := min(len(b), maxBinaryData)
		// Encode straight into the write buffer when the line fits, to
		// save a copy of every byte.
		need := maxEventOverhead + base64.StdEncoding.EncodedLen(n)
		if e.bw.Available() < need && e.bw.Buffered() > 0 {
			if err := e.bw.Flush(); err != nil {
				e.failed = true
				w.fail(fmt.Errorf("write recording: %w", err))
				return
			}
		}
		direct := e.bw.Available() >= need
		line := e.scratch[:0]
		if direct {
			line = e.bw.AvailableBuffer()
		}
		line = appendEventPrefix(line, off.Seconds(), code)
		line = append(line, '"')
		line = base64.StdEncoding.AppendEncode(line, b[:n])
		line = append(line, '"', ']', '\n')
		if !direct {
			e.scratch = line
		}
		w.writeLines(line, 1)
		b = b[n:]
	}
}

// writeEvent buffers one event line.
func (w *Writer) writeEvent(ev Event) {
	e := &w.enc
	e.scratch = appendEvent(e.scratch[:0], ev)
	e.scratch = append(e.scratch, '\n')
	w.writeLines(e.scratch, 1)
}

// writeLines buffers n complete event lines.
func (w *Writer) writeLines(lines []byte, n int) {
	e := &w.enc
	if e.failed {
		return
	}
	if _, err := e.bw.Write(lines); err != nil {
		e.failed = true
		w.fail(fmt.Errorf("write recording: %w", err))
		return
	}
	e.events += int64(n)
	e.dirty = true
}

// Close drains the queue, writes any held-back bytes of a split character
// (as U+FFFD after text, exactly after binary data), reports partial lines to OnLine, flushes and syncs, stops
// the background goroutines and closes the file if Create opened it. It
// returns the recording's Summary and the first error of the recording's
// life. Calling Close again returns the same results.
func (w *Writer) Close() (Summary, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.closedCh
		return w.sum, w.closeErr
	}
	w.closed = true
	w.space.Broadcast()
	w.mu.Unlock()
	w.wake()
	<-w.done
	close(w.syncStop)
	<-w.syncDone

	// The goroutines have exited: the encoder state is Close's now.
	e := &w.enc
	w.mu.Lock()
	off := w.offset()
	e.failed = w.err != nil
	w.mu.Unlock()
	if !e.failed {
		for _, ts := range []*textStream{&e.out, &e.in} {
			if len(ts.carry) > 0 && ts.binary {
				w.writeBinary(off, ts.binCode, ts.carry)
				ts.carry = nil
			}
			if len(ts.carry) > 0 {
				w.writeText(off, ts.code, string(ts.carry))
			}
			if ts.lines != nil {
				ts.lines.lb.now = off
				ts.lines.p.feed(string(ts.carry), &ts.lines.lb)
				ts.lines.p.flush(&ts.lines.lb)
				ts.lines.lb.end()
			}
			ts.carry = nil
		}
	}
	if !e.failed {
		if err := e.bw.Flush(); err != nil {
			w.fail(fmt.Errorf("flush recording: %w", err))
			e.failed = true
		}
	}
	if !e.failed && e.sync != nil {
		if err := e.sync.Sync(); err != nil {
			w.fail(fmt.Errorf("sync recording: %w", err))
		}
	}
	if e.file != nil {
		if err := e.file.Close(); err != nil {
			w.fail(fmt.Errorf("close recording: %w", err))
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sum.Events = e.events
	w.sum.Size = e.cw.n
	w.sum.SHA256 = hex.EncodeToString(e.cw.h.Sum(nil))
	w.sum.Duration = off
	w.closeErr = w.err
	w.queue, w.slab = nil, nil
	close(w.closedCh)
	return w.sum, w.closeErr
}

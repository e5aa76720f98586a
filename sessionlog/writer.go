package sessionlog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	// Pool, if set, is shared by the Writers whose encoding should take
	// turns (a bastion's sessions): see EncoderPool. Without it each
	// Writer still yields the processor every encodeSlice bytes.
	Pool *EncoderPool
	// QueueSize bounds how many bytes of events may wait to be encoded;
	// 0 means 4 MiB. Output, Input, Resize and Marker block while the
	// queue is full (back-pressure: nothing is dropped).
	QueueSize int
	// Uncompressed writes the asciicast v2 lines as they are, the format
	// of recordings before compression, instead of the default sequence
	// of zstd frames (see Reader, which reads both). It is there for
	// comparisons and for destinations that must be plain asciicast.
	Uncompressed bool
}

// Line is a line of text seen in a recording.
type Line struct {
	Offset time.Duration // when the line started, from the start of the recording
	Kind   string        // CodeOutput, CodeInput or CodeMarker
	Text   string        // plain text: escapes stripped, trailing blanks trimmed
}

// Summary describes a finished recording.
type Summary struct {
	Size     int64         // bytes written, header included: the file as stored (compressed by default)
	SHA256   string        // hex SHA-256 of the bytes written: the whole file as stored
	Plain    int64         // bytes of asciicast v2 lines before compression (Size when uncompressed)
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
	// linesOff is set by StopLines: the encoder builds no more search lines.
	linesOff atomic.Bool

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
	cw.slot = &encodeSlot{pool: opts.Pool}
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
		enc: encoder{
			slot:   cw.slot,
			cw:     cw,
			plain:  opts.Uncompressed,
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
	// The header is a frame of its own, on disk before any event.
	w.enc.frame = append(line, '\n')
	w.seal()
	w.enc.dropBuffers()
	if w.enc.failed {
		return nil, fmt.Errorf("write header: %w", w.err)
	}
	if w.enc.sync != nil {
		if err := w.enc.sync.Sync(); err != nil {
			return nil, fmt.Errorf("sync header: %w", err)
		}
	}
	w.onError = opts.OnError // set now: a failed header is NewWriter's error
	go w.encodeLoop(opts.SyncInterval)
	go w.syncLoop()
	return w, nil
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

// StopLines ends OnLine for the rest of the recording: the encoder stops
// building search lines, which is most of its work on text, because the
// caller will read the rest of the text back from the stored recording
// (the bastion's indexer does once it falls behind). The recording itself
// is unchanged. It may be called from OnLine and from any goroutine.
func (w *Writer) StopLines() { w.linesOff.Store(true) }

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
		w.seal()
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
	w.sum.Plain = e.plainSize
	w.sum.SHA256 = hex.EncodeToString(e.cw.h.Sum(nil))
	w.sum.Duration = off
	w.closeErr = w.err
	w.queue, w.slab = nil, nil
	e.frame, e.zbuf, e.own = nil, nil, nil
	close(w.closedCh)
	return w.sum, w.closeErr
}

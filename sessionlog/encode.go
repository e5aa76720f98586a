package sessionlog

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/zstd"
)

// encoder is the state of the encoding goroutine.
type encoder struct {
	slot      *encodeSlot // held while encoding; shared with cw
	cw        *countingWriter
	plain     bool   // write lines uncompressed (WriterOptions.Uncompressed)
	frame     []byte // lines of the frame being built (see seal)
	zbuf      []byte // the compressed frame
	own       *zstd.Encoder
	plainSize int64     // bytes of lines, before compression
	sync      syncer    // nil if the destination cannot sync
	file      io.Closer // the file Create opened, closed by Close
	onLine    func(Line)
	out, in   textStream
	dirty     bool // data written since the last flush
	failed    bool // a copy of err != nil, so the encoder skips work
	events    int64
	scratch   []byte
	joinBuff  []byte
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

// countingWriter counts and hashes what reached the destination. It gives
// the encoder's pool slot back while the destination writes, so that a
// slow disk stalls only its own recording.
type countingWriter struct {
	w    io.Writer
	h    hash.Hash
	n    int64
	slot *encodeSlot
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.slot.held {
		c.slot.release()
		defer c.slot.acquire()
	}
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

func (w *Writer) newLineStream(kind string) *lineStream {
	ls := &lineStream{}
	ls.lb.input = kind == CodeInput
	ls.lb.emit = func(text string, start time.Duration) {
		if w.linesOff.Load() || strings.TrimSpace(text) == "" {
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
				// idle session keeps no burst-sized queue or frame.
				batch, slab = nil, nil
				w.enc.dropBuffers()
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
//
// It holds the pool slot while it works and yields it after every
// encodeSlice bytes, so that a long stream's recording work comes in short
// turns and never keeps forwarding goroutines waiting for a processor.
func (w *Writer) encodeBatch(batch []item, slab []byte) {
	e := &w.enc
	e.slot.acquire()
	done := 0
	for i := range batch {
		if done >= encodeSlice {
			e.slot.yield()
			done = 0
		}
		w.encode(&batch[i], slab[batch[i].start:batch[i].end])
		done += batch[i].end - batch[i].start + len(batch[i].text)
		batch[i] = item{}
	}
	e.slot.release()
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
	w.seal()
	if e.failed {
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
		if e.onLine != nil && !e.failed && !w.linesOff.Load() {
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
		// A view, not a copy: data is read here and by the line builder,
		// which copies what it keeps, and is gone before chunk's buffer
		// (the queue's slab or joinBuff) is written again.
		data = unsafe.String(unsafe.SliceData(chunk), len(chunk))
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
	if ts.lines != nil && !w.linesOff.Load() {
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
// data each, encoded straight into the frame.
func (w *Writer) writeBinary(off time.Duration, code string, b []byte) {
	e := &w.enc
	for len(b) > 0 && !e.failed {
		n := min(len(b), maxBinaryData)
		w.frameRoom(maxEventOverhead + base64.StdEncoding.EncodedLen(n))
		line := appendEventPrefix(e.frame, off.Seconds(), code)
		line = append(line, '"')
		line = base64.StdEncoding.AppendEncode(line, b[:n])
		e.frame = append(line, '"', ']', '\n')
		w.lineDone(1)
		b = b[n:]
	}
}

// writeEvent buffers one event line.
func (w *Writer) writeEvent(ev Event) {
	e := &w.enc
	w.frameRoom(maxEventOverhead + len(ev.Data))
	e.frame = append(appendEvent(e.frame, ev), '\n')
	w.lineDone(1)
}

// writeLines buffers n complete event lines, ending frames between lines
// as they fill.
func (w *Writer) writeLines(lines []byte, n int) {
	e := &w.enc
	for len(lines) > 0 && !e.failed {
		w.frameRoom(0)
		room := frameMax - len(e.frame)
		cut := len(lines)
		if cut > room {
			cut = bytes.LastIndexByte(lines[:room], '\n') + 1
			if cut == 0 && len(e.frame) > 0 {
				w.seal()
				continue
			}
			if cut == 0 { // one line longer than a frame: it goes whole
				cut = bytes.IndexByte(lines, '\n') + 1
			}
		}
		e.frame = append(e.frame, lines[:cut]...)
		lines = lines[cut:]
		if len(e.frame) >= frameMax {
			w.seal()
		}
	}
	w.lineDone(n)
}

// lineDone counts n event lines added to the frame.
func (w *Writer) lineDone(n int) {
	e := &w.enc
	if e.failed {
		return
	}
	e.events += int64(n)
	e.dirty = true
}

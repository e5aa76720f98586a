package sessionlog

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// The stored format. A recording written by default is a sequence of
// independent zstd frames (RFC 8878), each holding a whole number of
// asciicast v2 lines: the header line is the first frame, and a frame ends
// at every periodic flush (so once a second while there is output), at
// Close, and whenever frameMax bytes of lines are buffered. Decompressing
// the whole file (`zstd -dc`, which reads concatenated frames) gives the
// asciicast v2 recording as the uncompressed format stores it. A crash
// leaves complete frames, which all decode (each carries its own checksum),
// and at most one torn frame, which the Reader reports as truncation.
const (
	// frameMax is how many bytes of lines a frame holds before it is
	// compressed and written, when a flush does not come first (a frame
	// may exceed it by one over-long line). 64 KiB compresses text within
	// a fraction of a percent of 1 MiB frames (measured: 0.194 against
	// 0.199 of the output for journal text at SpeedFastest), fits one zstd
	// block, so a frame is compressed in one short turn, and bounds what a
	// reader must hold to decode a frame.
	frameMax = 64 << 10
	// frameWindow is the encoders' window: a frame's matches never reach
	// further back than the frame itself.
	frameWindow = frameMax
)

// zstdMagic starts every zstd frame; an uncompressed recording starts with
// '{' (its header's JSON object).
var zstdMagic = [4]byte{0x28, 0xb5, 0x2f, 0xfd}

// newFrameEncoder returns the encoder every compressed recording uses.
// SpeedFastest keeps compression behind the copy loop's pace; literal
// entropy coding is on for every block, because binary output is stored as
// base64 in "bo" events and only Huffman coding of the literals brings its
// 4/3 back to the size of the data (measured on random output: 1.004x with
// it, 1.334x without).
func newFrameEncoder() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(frameWindow),
		zstd.WithAllLitEntropyCompression(true),
		zstd.WithEncoderCRC(true),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		// Only invalid options fail, and these are constants.
		panic(fmt.Sprintf("sessionlog: zstd encoder options: %v", err))
	}
	return enc
}

// getEncoder returns an encoder for one frame: the pool's, so that idle
// Writers hold none, or the Writer's own when it has no pool. Callers hold
// the encoding slot, so a pool never makes more encoders than it has
// slots.
func (e *encoder) getEncoder() *zstd.Encoder {
	if p := e.slot.pool; p != nil {
		select {
		case z := <-p.zstd:
			return z
		default:
			return newFrameEncoder()
		}
	}
	if e.own == nil {
		e.own = newFrameEncoder()
	}
	return e.own
}

// putEncoder gives an encoder from getEncoder back.
func (e *encoder) putEncoder(z *zstd.Encoder) {
	if p := e.slot.pool; p != nil {
		select {
		case p.zstd <- z:
		default: // the pool is full: let it go
		}
	}
}

// seal ends the current frame: it compresses the buffered lines into one
// zstd frame (or takes them as they are when uncompressed) and writes it
// to the destination. Compression takes a turn in the encoding pool; the
// write to the destination holds no slot (see countingWriter).
func (w *Writer) seal() {
	e := &w.enc
	if e.failed || len(e.frame) == 0 {
		return
	}
	out := e.frame
	if !e.plain {
		held := e.slot.held
		if !held {
			e.slot.acquire()
		}
		z := e.getEncoder()
		e.zbuf = z.EncodeAll(e.frame, e.zbuf[:0])
		e.putEncoder(z)
		if !held {
			e.slot.release()
		}
		out = e.zbuf
	}
	e.plainSize += int64(len(e.frame))
	e.frame = e.frame[:0]
	if _, err := e.cw.Write(out); err != nil {
		e.failed = true
		w.fail(fmt.Errorf("write recording: %w", err))
	}
}

// frameRoom makes room for a line of need bytes in the current frame,
// sealing it first if the line would take it past frameMax, and allocates
// the frame buffer of a Writer that let it go while idle.
func (w *Writer) frameRoom(need int) {
	e := &w.enc
	if len(e.frame) > 0 && len(e.frame)+need > frameMax {
		w.seal()
	}
	if e.frame == nil {
		e.frame = make([]byte, 0, frameMax+maxEventOverhead)
	}
}

// dropBuffers lets an idle Writer's frame buffers go, so that an idle
// session holds no frame-sized memory. The frame must be empty.
func (e *encoder) dropBuffers() {
	if len(e.frame) == 0 {
		e.frame, e.zbuf, e.scratch, e.joinBuff = nil, nil, nil, nil
	}
	for _, ts := range []*textStream{&e.out, &e.in} {
		if ts.lines != nil {
			ts.lines.lb.dropArena()
		}
	}
}

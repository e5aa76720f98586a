package sessionlog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
)

const (
	// maxFrameStored bounds the compressed size of a frame the Reader
	// accepts; the Writer's frames hold about frameMax bytes of lines.
	maxFrameStored = 2 << 20
	// maxFrameContent bounds what a frame may decompress to: a frame of
	// the Writer is at most frameMax plus one line (maxLineLen).
	maxFrameContent = frameMax + maxLineLen
	// maxBlockSize is zstd's largest block (RFC 8878, Block_Maximum_Size).
	maxBlockSize = 128 << 10
)

// TornFrameError is the truncation a compressed recording ends with when
// its last frame is incomplete or does not decode and nothing follows it,
// as a crash in the middle of a write leaves it. Every frame before it was
// read whole. It matches ErrTruncated (errors.Is).
type TornFrameError struct {
	Frame  int   // 1-based number of the torn frame
	Offset int64 // byte offset in the file where it starts
	Size   int64 // bytes of it that are there
	Reason string
}

func (e *TornFrameError) Error() string {
	return fmt.Sprintf("sessionlog: recording ends with a torn zstd frame: frame %d at byte %d, %d bytes: %s",
		e.Frame, e.Offset, e.Size, e.Reason)
}

// Is makes errors.Is(err, ErrTruncated) true.
func (e *TornFrameError) Is(target error) bool { return target == ErrTruncated }

// frameReader turns a sequence of zstd frames into the lines they hold,
// one whole frame at a time: a frame is decoded only once all of it has
// arrived and its checksum matches, so a reader following a live
// recording never sees part of a frame, and a torn last frame yields
// nothing of itself.
type frameReader struct {
	src    *bufio.Reader
	dec    *zstd.Decoder
	off    int64 // bytes of src consumed
	frames int   // frames read
	raw    []byte
	out    []byte // decoded lines not yet read
	err    error  // sticky
}

func newFrameReader(src *bufio.Reader) (*frameReader, error) {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(maxFrameContent),
		zstd.WithDecoderMaxWindow(maxFrameContent),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &frameReader{src: src, dec: dec}, nil
}

// Read gives the lines of the frames read so far; at the end of the input
// it returns io.EOF after a whole frame, a *TornFrameError after a torn
// one, and another error for a frame that is corrupt with more after it.
func (f *frameReader) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		f.err = f.next()
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

// next reads and decodes one frame into f.out.
func (f *frameReader) next() error {
	start := f.off
	f.raw = f.raw[:0]
	err := f.readFrame()
	f.off += int64(len(f.raw))
	if err == io.EOF && len(f.raw) == 0 {
		f.dec.Close()
		return io.EOF
	}
	num := f.frames + 1
	torn := func(reason string) error {
		f.dec.Close()
		return &TornFrameError{Frame: num, Offset: start, Size: int64(len(f.raw)), Reason: reason}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return torn("the file ends inside it")
	}
	// Zeros to the end of the file (what a crash can leave after the last
	// write) are a torn tail too; other bytes are damage.
	var bad *badFrame
	if errors.As(err, &bad) && !bytes.ContainsFunc(f.raw, func(r rune) bool { return r != 0 }) && f.zerosToEnd() {
		return torn(bad.reason)
	}
	if err != nil {
		return fmt.Errorf("read recording: frame %d at byte %d: %w", num, start, err)
	}
	out, err := f.dec.DecodeAll(f.raw, f.out[:0])
	if err == nil && (len(out) == 0 || out[len(out)-1] != '\n') {
		err = errors.New("does not end with a whole line")
	}
	if err != nil {
		if f.atEnd() {
			return torn(err.Error())
		}
		return fmt.Errorf("read recording: frame %d at byte %d: %w", num, start, err)
	}
	f.frames++
	f.out = out
	return nil
}

// atEnd reports whether nothing follows what was read. Only a frame that
// failed asks, so waiting here for a live recording's next write is the
// rare case.
func (f *frameReader) atEnd() bool {
	_, err := f.src.Peek(1)
	return err == io.EOF
}

// zerosToEnd reports whether the rest of the input, up to maxFrameStored
// bytes, is zeros and ends.
func (f *frameReader) zerosToEnd() bool {
	for n := 0; n < maxFrameStored; {
		b, err := f.src.Peek(1)
		if err == io.EOF {
			return true
		}
		if err != nil || b[0] != 0 {
			return false
		}
		_, _ = f.src.ReadByte()
		n++
		f.raw = append(f.raw, 0)
	}
	return false
}

// badFrame is a frame whose structure is wrong.
type badFrame struct{ reason string }

func (b *badFrame) Error() string { return b.reason }

// readFrame reads one whole frame into f.raw, walking its header and block
// headers (RFC 8878 section 3.1.1) so that it knows where the frame ends
// before decoding it.
func (f *frameReader) readFrame() error {
	hdr, err := f.take(5)
	if err != nil {
		return err
	}
	if !bytes.Equal(hdr[:4], zstdMagic[:]) {
		return &badFrame{fmt.Sprintf("no zstd frame magic (% x)", hdr[:4])}
	}
	fhd := hdr[4]
	if fhd&0x08 != 0 {
		return &badFrame{"reserved bit set in the frame header"}
	}
	single := fhd&0x20 != 0
	size := [4]int{0, 1, 2, 4}[fhd&3] + [4]int{0, 2, 4, 8}[fhd>>6]
	if !single {
		size++ // window descriptor
	}
	if single && fhd>>6 == 0 {
		size++ // a one-byte content size
	}
	if _, err := f.take(size); err != nil {
		return err
	}
	for last := false; !last; {
		b, err := f.take(3)
		if err != nil {
			return err
		}
		bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		last = bh&1 != 0
		n := int(bh >> 3)
		switch bh >> 1 & 3 {
		case 1: // RLE: one byte, repeated
			n = 1
		case 3:
			return &badFrame{"reserved block type"}
		}
		if n > maxBlockSize {
			return &badFrame{fmt.Sprintf("block of %d bytes, more than %d", n, maxBlockSize)}
		}
		if _, err := f.take(n); err != nil {
			return err
		}
	}
	if fhd&0x04 != 0 {
		_, err = f.take(4) // content checksum
	}
	return err
}

// take appends the next n bytes of the frame to f.raw and returns them.
func (f *frameReader) take(n int) ([]byte, error) {
	if len(f.raw)+n > maxFrameStored {
		return nil, &badFrame{fmt.Sprintf("frame longer than %d bytes", maxFrameStored)}
	}
	at := len(f.raw)
	f.raw = slices.Grow(f.raw, n)[:at+n]
	m, err := io.ReadFull(f.src, f.raw[at:])
	f.raw = f.raw[:at+m]
	if err != nil {
		return nil, err
	}
	return f.raw[at:], nil
}

// IsCompressed reports whether a recording whose first bytes are head (at
// least 4) is stored as zstd frames rather than plain asciicast v2.
func IsCompressed(head []byte) bool { return isCompressed(head) }

func isCompressed(head []byte) bool {
	return len(head) >= 4 && binary.LittleEndian.Uint32(head) == binary.LittleEndian.Uint32(zstdMagic[:])
}

// WritePlain writes the asciicast v2 lines of a recording in either stored
// format to dst: a plain recording byte for byte, a compressed one frame by
// frame, decompressed. It reports whether a compressed recording ended with
// a torn frame, which is left out (a plain recording's torn last line is
// copied as it is, as ReadAll reports it). Corrupt frames are an error.
func WritePlain(dst io.Writer, src io.Reader) (torn bool, err error) {
	br := bufio.NewReaderSize(src, 64<<10)
	head, _ := br.Peek(4)
	var from io.Reader = br
	if isCompressed(head) {
		fr, err := newFrameReader(br)
		if err != nil {
			return false, err
		}
		from = fr
	}
	_, err = io.Copy(dst, from)
	if errors.Is(err, ErrTruncated) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("write recording as asciicast: %w", err)
	}
	return false, nil
}

package sessionlog

import (
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// encodeSlice is how much queued data an encoder works through before it
// gives its EncoderPool slot back and lets other goroutines run: the
// longest stretch of CPU one Writer's recording work takes at a time
// (about a few hundred microseconds of escaping and line building).
const encodeSlice = 16 << 10

// EncoderPool bounds how many Writers sharing it encode at the same time.
// Recording work (escaping, hashing, building search lines) is CPU-bound
// and goes on as long as a stream lasts; without a bound, a few busy
// sessions keep every processor busy and the goroutines that forward
// other sessions' keystrokes wait in the scheduler's run queue behind
// them. A Writer holds a slot only while it encodes (never while it writes
// to or syncs its destination, so a slow disk holds no slot) and gives it
// back after every encodeSlice bytes; waiting Writers get slots in turn.
// Forwarding never waits for a slot: Output and Input only queue.
//
// The pool also keeps the zstd encoders of its Writers' compressed
// recordings, at most one per slot: a frame is compressed by whichever
// Writer holds a slot, so an idle Writer holds no encoder.
type EncoderPool struct {
	slots chan struct{}
	zstd  chan *zstd.Encoder // idle encoders
}

// NewEncoderPool returns a pool that lets n Writers encode at once (at
// least one).
func NewEncoderPool(n int) *EncoderPool {
	n = max(n, 1)
	return &EncoderPool{slots: make(chan struct{}, n), zstd: make(chan *zstd.Encoder, n)}
}

// encodeSlot is one Writer's hold on its pool's slot; the zero value with
// a nil pool never waits.
type encodeSlot struct {
	pool *EncoderPool
	held bool
}

func (s *encodeSlot) acquire() {
	if s.pool != nil && !s.held {
		s.pool.slots <- struct{}{}
	}
	s.held = true
}

func (s *encodeSlot) release() {
	if s.pool != nil && s.held {
		<-s.pool.slots
	}
	s.held = false
}

// yield gives the slot and the processor to others and takes the slot
// back.
func (s *encodeSlot) yield() {
	s.release()
	runtime.Gosched()
	s.acquire()
}

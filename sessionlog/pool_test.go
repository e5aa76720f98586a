package sessionlog

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stuckWriter starts a Writer on a gatedFile and leaves its encoder stuck
// in the destination's Write: the header goes through, then a burst of
// binary output fills the write buffer.
func stuckWriter(t *testing.T, pool *EncoderPool) (*Writer, *gatedFile) {
	t.Helper()
	g := &gatedFile{open: make(chan struct{})}
	close(g.open) // the header goes through
	w, err := NewWriter(g, Header{Width: 80, Height: 24}, WriterOptions{Pool: pool})
	mustNil(t, err)
	g.open = make(chan struct{})
	mustNil(t, w.Output(bytes.Repeat([]byte{0, 1, 2, 3}, 32<<10))) // 128 KiB
	time.Sleep(50 * time.Millisecond)                              // the encoder reaches Write
	return w, g
}

// TestSmallOutputWhileDestinationStuck: a keystroke's echo is queued and
// Output returns at once while the encoder is stuck on a slow disk, with or
// without a pool; when the disk moves again it is in the recording.
func TestSmallOutputWhileDestinationStuck(t *testing.T) {
	for _, tc := range []struct {
		name string
		pool *EncoderPool
	}{{name: "no pool"}, {name: "pool of one", pool: NewEncoderPool(1)}} {
		t.Run(tc.name, func(t *testing.T) {
			w, g := stuckWriter(t, tc.pool)
			returned := make(chan error, 1)
			start := time.Now()
			go func() { returned <- w.Output([]byte("k")) }()
			select {
			case err := <-returned:
				mustNil(t, err)
			case <-time.After(2 * time.Second):
				t.Fatal("Output of one byte did not return while the destination was stuck")
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("Output of one byte took %v while the destination was stuck", d)
			}
			close(g.open)
			_, err := w.Close()
			mustNil(t, err)
			rec, err := ReadAll(bytes.NewReader(g.bytes()))
			mustNil(t, err)
			if last := rec.Events[len(rec.Events)-1]; last.Code != CodeOutput || last.Data != "k" {
				t.Errorf("last event %+v, want the output k", last)
			}
		})
	}
}

// TestPoolSlotFreeDuringWrite: with a pool of one slot, a Writer whose
// destination is stuck holds no slot, so another Writer still encodes and
// closes.
func TestPoolSlotFreeDuringWrite(t *testing.T) {
	pool := NewEncoderPool(1)
	stuck, g := stuckWriter(t, pool)
	var other memFile
	w, err := NewWriter(&other, Header{Width: 80, Height: 24}, WriterOptions{Pool: pool})
	mustNil(t, err)
	closed := make(chan error, 1)
	go func() {
		if err := w.Output([]byte(strings.Repeat("log line\r\n", 10<<10))); err != nil {
			closed <- err
			return
		}
		_, err := w.Close()
		closed <- err
	}()
	select {
	case err := <-closed:
		mustNil(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("a Writer sharing the pool could not encode while another's destination was stuck")
	}
	close(g.open)
	_, err = stuck.Close()
	mustNil(t, err)
}

// TestPoolBoundsEncoders: Writers sharing a pool of n slots never encode
// more than n at once (OnLine runs inside encoding), every Writer finishes
// with all of its lines.
func TestPoolBoundsEncoders(t *testing.T) {
	for _, n := range []int{1, 2} {
		pool := NewEncoderPool(n)
		var running, most atomic.Int32
		const writers, lines = 4, 4000
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got atomic.Int32
				w, err := NewWriter(&memFile{}, Header{Width: 80, Height: 24}, WriterOptions{Pool: pool, OnLine: func(Line) {
					now := running.Add(1)
					for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
					}
					time.Sleep(time.Microsecond) // let the others try to overlap
					got.Add(1)
					running.Add(-1)
				}})
				if err != nil {
					t.Error(err)
					return
				}
				for i := 0; i < lines; i += 100 {
					if err := w.Output([]byte(strings.Repeat("a log line\r\n", 100))); err != nil {
						t.Error(err)
					}
				}
				if _, err := w.Close(); err != nil {
					t.Error(err)
				}
				if got.Load() != lines {
					t.Errorf("pool of %d: OnLine saw %d lines, want %d", n, got.Load(), lines)
				}
			}()
		}
		wg.Wait()
		if m := most.Load(); m > int32(n) {
			t.Errorf("pool of %d: %d Writers encoded at once", n, m)
		}
	}
}

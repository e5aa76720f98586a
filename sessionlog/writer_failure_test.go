package sessionlog

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// gatedFile is a destination whose writes wait until open is closed.
type gatedFile struct {
	open chan struct{}
	memFile
}

func (g *gatedFile) Write(p []byte) (int, error) {
	<-g.open
	return g.memFile.Write(p)
}

// TestWriterBackPressure: while the destination is stuck, callers block
// once the queue is full instead of dropping anything; when it moves again
// every byte arrives.
func TestWriterBackPressure(t *testing.T) {
	g := &gatedFile{open: make(chan struct{})}
	close(g.open) // the header goes through
	w, err := NewWriter(g, Header{Width: 80, Height: 24}, WriterOptions{QueueSize: 64 << 10})
	mustNil(t, err)
	g.open = make(chan struct{})
	chunk := bytes.Repeat([]byte{0, 1, 2, 3}, 8<<10) // 32 KiB of binary output
	const chunks = 32
	var mu sync.Mutex
	done := 0
	finished := make(chan error, 1)
	go func() {
		for i := 0; i < chunks; i++ {
			if err := w.Output(chunk); err != nil {
				finished <- err
				return
			}
			mu.Lock()
			done++
			mu.Unlock()
		}
		finished <- nil
	}()
	// The encoder fills its 64 KiB write buffer and blocks in Write; the
	// queue then takes about 64 KiB more.
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	blockedAt := done
	mu.Unlock()
	if blockedAt >= chunks || blockedAt > 8 {
		t.Errorf("%d of %d outputs returned while the destination was stuck; want back-pressure", blockedAt, chunks)
	}
	close(g.open)
	select {
	case err := <-finished:
		mustNil(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("outputs still blocked after the destination moved again")
	}
	sum, err := w.Close()
	mustNil(t, err)
	rec, err := ReadAll(bytes.NewReader(g.bytes()))
	mustNil(t, err)
	data, _ := joinBytes(t, rec.Events)
	if want := strings.Repeat(string(chunk), chunks); data != want {
		t.Errorf("recorded %d bytes, want %d", len(data), len(want))
	}
	if sum.BytesOut != chunks*int64(len(chunk)) {
		t.Errorf("BytesOut = %d", sum.BytesOut)
	}
}

// TestWriterFailureWakesBlockedCallers: a write error while callers wait
// for queue space returns the error to them rather than leaving them
// blocked.
func TestWriterFailureWakesBlockedCallers(t *testing.T) {
	f := &memFile{limit: 100 << 10, writeErr: syscall.ENOSPC}
	w, err := NewWriter(f, Header{Width: 80, Height: 24}, WriterOptions{QueueSize: 32 << 10})
	mustNil(t, err)
	chunk := incompressible(32<<10, 0) // binary output that compression cannot shrink
	finished := make(chan error, 1)
	go func() {
		for i := 0; i < 1000; i++ {
			if err := w.Output(chunk); err != nil {
				finished <- err
				return
			}
		}
		finished <- nil
	}()
	select {
	case err := <-finished:
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Output = %v, want ENOSPC", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Output still blocked after the write error")
	}
	if _, err := w.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close = %v, want ENOSPC", err)
	}
}

func TestWriterPeriodicSync(t *testing.T) {
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{SyncInterval: 2 * time.Millisecond})
	mustNil(t, err)
	if n := f.syncCount(); n != 1 {
		t.Errorf("syncs after header = %d, want 1", n)
	}
	mustNil(t, w.Output([]byte("hello")))
	testkit.WaitFor(t, waitLimit, "periodic sync", func() bool { return f.syncCount() >= 2 })
	// The flushed frame is whole: its event reads back.
	if rec, err := ReadAll(bytes.NewReader(f.bytes())); err != nil || rec.Truncated || len(rec.Events) != 1 || rec.Events[0].Data != "hello" {
		t.Errorf("event not flushed as a whole frame before the sync: %+v, %v", rec, err)
	}
	// Nothing new to write: no more syncs.
	n := f.syncCount()
	time.Sleep(20 * time.Millisecond)
	if m := f.syncCount(); m != n {
		t.Errorf("syncs went from %d to %d with nothing written", n, m)
	}
	_, err = w.Close()
	mustNil(t, err)
}

func TestWriterStickyError(t *testing.T) {
	tests := []struct {
		name    string
		file    *memFile
		trigger func(w *Writer)
		want    error
	}{
		{
			name: "disk full on a large write",
			file: &memFile{limit: 4096, writeErr: syscall.ENOSPC},
			trigger: func(w *Writer) {
				_ = w.Output(incompressible(128<<10, 'A'))
				testkit.WaitFor(t, waitLimit, "write error", func() bool { return w.Err() != nil })
			},
			want: syscall.ENOSPC,
		},
		{
			name: "disk full on the periodic flush",
			file: &memFile{limit: 4096, writeErr: syscall.ENOSPC},
			trigger: func(w *Writer) {
				_ = w.Output(incompressible(8<<10, 'A'))
				testkit.WaitFor(t, waitLimit, "flush error", func() bool { return w.Err() != nil })
			},
			want: syscall.ENOSPC,
		},
		{
			name: "sync fails",
			file: &memFile{syncErr: syscall.EIO, syncsLeft: 1},
			trigger: func(w *Writer) {
				_ = w.Output([]byte("x"))
				testkit.WaitFor(t, waitLimit, "sync error", func() bool { return w.Err() != nil })
			},
			want: syscall.EIO,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var reported []error
			w, err := NewWriter(tt.file, Header{Width: 80, Height: 24}, WriterOptions{
				SyncInterval: time.Millisecond,
				OnError: func(err error) {
					mu.Lock()
					reported = append(reported, err)
					mu.Unlock()
				},
			})
			mustNil(t, err)
			tt.trigger(w)
			calls := map[string]error{
				"Err":    w.Err(),
				"Output": w.Output([]byte("more")),
				"Input":  w.Input([]byte("more")),
				"Resize": w.Resize(10, 10),
				"Marker": w.Marker("m"),
			}
			_, calls["Close"] = w.Close()
			for name, err := range calls {
				if !errors.Is(err, tt.want) {
					t.Errorf("%s() = %v, want %v", name, err, tt.want)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reported) != 1 || !errors.Is(reported[0], tt.want) {
				t.Errorf("OnError got %v, want one %v", reported, tt.want)
			}
		})
	}
}

func TestWriterClosed(t *testing.T) {
	var f memFile
	w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{})
	mustNil(t, err)
	first, err := w.Close()
	mustNil(t, err)
	second, err := w.Close()
	if err != nil || second != first {
		t.Errorf("second Close = %+v, %v; want %+v, nil", second, err, first)
	}
	if err := w.Output([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Output after Close = %v, want ErrClosed", err)
	}
	if err := w.Marker("x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Marker after Close = %v, want ErrClosed", err)
	}
}

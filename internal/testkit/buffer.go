package testkit

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer that a process's output copier (exec.Cmd's
// goroutine), a daemon's log and the test may use at once: Write and
// String take one lock.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package sessionlog

import (
	"fmt"
	"strings"
	"testing"
)

// discardSyncer is a destination that keeps nothing and syncs instantly.
type discardSyncer struct{}

func (discardSyncer) Write(p []byte) (int, error) { return len(p), nil }
func (discardSyncer) Sync() error                 { return nil }

// BenchmarkWriterOutput measures the recording cost the bastion pays per
// read of session output.
func BenchmarkWriterOutput(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 32 << 10} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			chunk := []byte(strings.Repeat("\x1b[32mok\x1b[0m h\u00e9llo\r\n", size/20+1)[:size])
			for _, onLine := range []bool{false, true} {
				b.Run(fmt.Sprintf("online=%v", onLine), func(b *testing.B) {
					opts := WriterOptions{}
					if onLine {
						opts.OnLine = func(Line) {}
					}
					w, err := NewWriter(discardSyncer{}, Header{Width: 80, Height: 24}, opts)
					if err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(size))
					for b.Loop() {
						if err := w.Output(chunk); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := w.Close(); err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	}
}

// BenchmarkWriterBinaryOutput measures the recording cost of output that
// is not text (reads of NUL bytes), which is written as base64 events.
func BenchmarkWriterBinaryOutput(b *testing.B) {
	chunk := make([]byte, 32<<10)
	w, err := NewWriter(discardSyncer{}, Header{Width: 80, Height: 24}, WriterOptions{OnLine: func(Line) {}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if err := w.Output(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

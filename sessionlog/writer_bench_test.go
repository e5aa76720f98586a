package sessionlog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
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

// countingSyncer is a destination that counts what it is given.
type countingSyncer struct{ n int64 }

func (c *countingSyncer) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
func (c *countingSyncer) Sync() error                 { return nil }

// journalText returns n bytes of terminal output that looks like
// `journalctl`: timestamped lines of a few services with varying numbers,
// CRLF-terminated as a pty gives them.
func journalText(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	units := []string{"sshd", "systemd", "kernel", "CRON", "nginx", "postgres"}
	msgs := []string{
		"Accepted publickey for deploy from 10.0.%d.%d port %d ssh2: ED25519 SHA256:%x",
		"Started session-%d.scope - Session %d of User deploy.",
		"audit: type=1400 audit(1764547200.%d:%d): apparmor=\"STATUS\" operation=\"profile_load\" pid=%d",
		"10.1.%d.%d - - \"GET /api/v1/items/%d HTTP/1.1\" 200 %d \"-\" \"curl/8.5.0\"",
		"checkpoint complete: wrote %d buffers (%d.%d%%); 0 WAL file(s) added, %d removed",
	}
	var b bytes.Buffer
	t := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for b.Len() < n {
		t = t.Add(time.Duration(r.IntN(2000)) * time.Millisecond)
		m := fmt.Sprintf(msgs[r.IntN(len(msgs))], r.IntN(255), r.IntN(255), r.IntN(65535), r.Uint32())
		fmt.Fprintf(&b, "%s web1 %s[%d]: %s\r\n", t.Format("Jan 02 15:04:05"), units[r.IntN(len(units))], 1000+r.IntN(30000), m)
	}
	return b.Bytes()[:n]
}

// BenchmarkRecordingFootprint records 8 MiB of each kind of output in
// 32 KiB reads (the size of an SSH channel's packets), search lines on as
// in the bastion, compressed (the default) and uncompressed, and reports
// the bytes stored per byte carried (stored/B, issue 15's footprint:
// at most 0.25 for text and zeros, 1.02 for random data) besides
// throughput and allocations.
func BenchmarkRecordingFootprint(b *testing.B) {
	const total = 8 << 20
	cases := []struct {
		name string
		data []byte
	}{
		{"text", journalText(total)},
		{"zeros", make([]byte, total)},
		{"random", incompressible(total, 0)},
	}
	for _, c := range cases {
		for _, plain := range []bool{false, true} {
			name := c.name + "/zstd"
			if plain {
				name = c.name + "/plain"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(total)
				b.ReportAllocs()
				var stored, carried int64
				cpu0 := cpuTime()
				for b.Loop() {
					var dst countingSyncer
					w, err := NewWriter(&dst, Header{Width: 80, Height: 24}, WriterOptions{OnLine: func(Line) {}, Uncompressed: plain})
					if err != nil {
						b.Fatal(err)
					}
					for i := 0; i < total; i += 32 << 10 {
						if err := w.Output(c.data[i : i+32<<10]); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := w.Close(); err != nil {
						b.Fatal(err)
					}
					stored += dst.n
					carried += total
				}
				b.ReportMetric(float64(stored)/float64(carried), "stored/B")
				// CPU time, unlike MB/s, holds on a busy shared machine.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/(float64(carried)/(1<<20)), "cpu-ms/MiB")
			})
		}
	}
}

// BenchmarkIdleWriterMemory reports the heap an idle Writer holds (B/idle)
// after some output, as the bastion keeps one per idle session: 200
// Writers sharing a pool, each given a screenful of text with search lines
// on, then left idle past two sync intervals, when idle buffers go.
func BenchmarkIdleWriterMemory(b *testing.B) {
	const writers = 200
	screen := journalText(4 << 10)
	for b.Loop() {
		pool := NewEncoderPool(1)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ws := make([]*Writer, writers)
		for i := range ws {
			w, err := NewWriter(discardSyncer{}, Header{Width: 80, Height: 24},
				WriterOptions{OnLine: func(Line) {}, Pool: pool, SyncInterval: 5 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			if err := w.Output(screen); err != nil {
				b.Fatal(err)
			}
			ws[i] = w
		}
		time.Sleep(100 * time.Millisecond) // idle for many intervals
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/writers, "B/idle")
		for _, w := range ws {
			if _, err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

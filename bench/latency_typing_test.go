package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Bounds of BenchmarkTypingLatency.
const (
	keystrokes     = 300                     // typed per path and condition
	keystrokeGap   = 5 * time.Millisecond    // pause between echo and next key
	echoTimeout    = 5 * time.Second         // per keystroke
	typingDeadline = 90 * time.Second        // per path and condition
	readyTimeout   = 30 * time.Second        // until the remote cat is ready
	streamChunk    = 64 << 20                // bytes per streaming ssh command
	streamMax      = 4 << 30                 // bytes per stream in a condition
	streamSettle   = 1500 * time.Millisecond // streams running before typing
	typistCommand  = "stty raw -echo; echo READY; exec cat"
)

// inProcessEnv runs jitd inside the benchmark's process when set, so that
// go test -cpuprofile, -blockprofile and -mutexprofile see the bastion; the
// default is a jitd process of its own, so that the typist's own reads
// never wait on the bastion's scheduler.
const inProcessEnv = "JITSSH_BENCH_INPROCESS"

// typingCondition is a number of other sessions streaming text on the same
// path while the typist types.
type typingCondition struct {
	name    string
	streams int
}

// BenchmarkTypingLatency measures the keystroke-to-echo round trip through
// a pty (ssh -tt ... cat in raw mode): one character is typed, its echo
// awaited, keystrokes times, on each path (bastion, recording on; OpenSSH
// ProxyJump; direct), idle and while 8 and 50 other sessions on the same
// path stream text (yes LINE | head -c N, bounded in bytes and time). It
// reports p50 and p99 per path and condition and bastion/ProxyJump.
func BenchmarkTypingLatency(b *testing.B) {
	inProc := os.Getenv(inProcessEnv) != ""
	run := daemonRunner(func(b *testing.B, env *daemonEnv, login string, hosts []benchHost) {
		runJitdProcess(b, env, login, hosts)
	})
	if inProc {
		run = inProcess
	}
	p := setupPaths(b, run)
	all := []transferPath{
		{name: "bastion", cmd: p.bastion},
		{name: "proxyjump", cmd: p.proxyJump},
		{name: "direct", cmd: p.direct},
	}
	conds := []typingCondition{{name: "idle"}, {name: "8streams", streams: 8}, {name: "50streams", streams: 50}}
	for _, path := range all {
		runOK(b, path.name+" warm-up", path.cmd(context.Background(), "-tt", "true"))
	}
	type key struct{ path, cond string }
	lat := map[key][]time.Duration{}
	for _, c := range conds {
		for _, path := range all {
			// Sub-benchmarks, so that -bench can pick one path and
			// condition to profile.
			b.Run(c.name+"/"+path.name, func(b *testing.B) {
				var ds []time.Duration
				var rate float64
				for i := 0; i < b.N; i++ {
					var streamed int64
					var err error
					r0 := readRuntimeStats()
					ds, streamed, rate, err = typeUnderLoad(path, c.streams)
					if err != nil {
						b.Fatalf("%s %s: %v", path.name, c.name, err)
					}
					if inProc {
						b.Logf("in-process jitd: %s", readRuntimeStats().since(r0))
					}
					b.Logf("%d keystrokes, p50 %.2f ms, p99 %.2f ms, max %.2f ms; others streamed %d MB, %.0f MB/s",
						len(ds), ms(percentile(ds, 50)), ms(percentile(ds, 99)), ms(percentile(ds, 100)), streamed/1e6, rate)
				}
				lat[key{path.name, c.name}] = ds
				b.ReportMetric(ms(percentile(ds, 50)), "p50_ms")
				b.ReportMetric(ms(percentile(ds, 99)), "p99_ms")
				if c.streams > 0 {
					b.ReportMetric(rate, "streams_MB/s")
				}
				if bp := lat[key{"bastion", c.name}]; path.name == "proxyjump" && bp != nil {
					b.ReportMetric(ms(percentile(bp, 99))/ms(percentile(ds, 99)), "p99_bastion/proxyjump")
				}
				b.ReportMetric(0, "ns/op")
			})
		}
	}
	var sum strings.Builder
	for _, c := range conds {
		fmt.Fprintf(&sum, "; %s:", c.name)
		for _, path := range all {
			if ds := lat[key{path.name, c.name}]; ds != nil {
				fmt.Fprintf(&sum, " %s p50 %.2f p99 %.2f ms", path.name, ms(percentile(ds, 50)), ms(percentile(ds, 99)))
			}
		}
	}
	b.Logf("keystroke to echo through a pty (%d keys)%s", keystrokes, sum.String())
}

// typeUnderLoad starts streams sessions on path streaming text, lets them
// run for streamSettle, types keystrokes characters into a typist session
// on the same path and stops the streams. It returns the round trips and
// the bytes the streams carried meanwhile and their rate in MB/s while the
// typist typed.
func typeUnderLoad(path transferPath, streams int) (_ []time.Duration, streamed int64, rate float64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), typingDeadline+readyTimeout+streamSettle)
	defer cancel()
	sctx, stopStreams := context.WithCancel(ctx)
	var carried atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stream(sctx, path, &carried); err != nil {
				errs <- err
			}
		}()
	}
	began := time.Now()
	stop := func() int64 {
		stopStreams()
		wg.Wait()
		return carried.Load()
	}
	if streams > 0 {
		select {
		case <-time.After(streamSettle):
		case err := <-errs:
			stop()
			return nil, 0, 0, fmt.Errorf("stream: %w", err)
		}
	}
	ds, err := typist(ctx, path)
	rate = float64(carried.Load()) / 1e6 / time.Since(began).Seconds()
	n := stop()
	if err == nil && len(ds) == 0 {
		err = fmt.Errorf("no keystroke echoed within %v", typingDeadline)
	}
	if err == nil && n == 0 && streams > 0 {
		err = errors.New("the streams carried nothing")
	}
	return ds, n, rate, err
}

// stream runs `yes LINE | head -c streamChunk` on path again and again
// until ctx ends or streamMax bytes went by, counting what arrives in
// carried. A command cut short by ctx is not an error.
func stream(ctx context.Context, path transferPath, carried *atomic.Int64) error {
	for sent := int64(0); sent < streamMax && ctx.Err() == nil; sent += streamChunk {
		cmd := path.cmd(ctx, fmt.Sprintf("yes '%s' | head -c %d", textLine, streamChunk))
		cmd.Stdout = atomicCounter{carried}
		if err := cmd.Run(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("%s: %w: %s", path.name, err, stderrOf(err))
		}
	}
	return nil
}

// atomicCounter adds what is written to it to n.
type atomicCounter struct{ n *atomic.Int64 }

func (c atomicCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// typist opens a pty session running cat in raw mode on path, waits for it
// to be ready, then types keystrokes characters one at a time and times
// each echo. Every step has a timeout; the session is killed at the end.
func typist(ctx context.Context, path transferPath) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, typingDeadline+readyTimeout)
	defer cancel()
	cmd := path.cmd(ctx, "-tt", typistCommand)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start typist: %w", err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	echoes := make(chan byte, 64)
	go readEchoes(stdout, echoes)
	if err := awaitReady(echoes); err != nil {
		return nil, fmt.Errorf("typist on %s: %w (stderr: %q)", path.name, err, stderr.String())
	}
	deadline := time.Now().Add(typingDeadline)
	ds := make([]time.Duration, 0, keystrokes)
	for i := range keystrokes {
		if time.Now().After(deadline) {
			// So slow that the bound cut it short: what was typed is the
			// measurement (the summary says how many).
			return ds, nil
		}
		c := byte('a' + i%26)
		start := time.Now()
		if _, err := stdin.Write([]byte{c}); err != nil {
			return nil, fmt.Errorf("type key %d: %w", i, err)
		}
		if err := awaitEcho(echoes, c); err != nil {
			return nil, fmt.Errorf("typist on %s, key %d: %w", path.name, i, err)
		}
		ds = append(ds, time.Since(start))
		time.Sleep(keystrokeGap)
	}
	return ds, nil
}

// readEchoes sends every byte read from r to echoes and closes it at EOF.
func readEchoes(r io.Reader, echoes chan<- byte) {
	defer close(echoes)
	buf := make([]byte, 256)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			echoes <- c
		}
		if err != nil {
			return
		}
	}
}

// awaitReady waits for the typist's READY line.
func awaitReady(echoes <-chan byte) error {
	timeout := time.After(readyTimeout)
	var seen []byte
	for !bytes.Contains(seen, []byte("READY\n")) && !bytes.Contains(seen, []byte("READY\r\n")) {
		select {
		case c, ok := <-echoes:
			if !ok {
				return fmt.Errorf("session ended before READY; output %q", seen)
			}
			seen = append(seen, c)
		case <-timeout:
			return fmt.Errorf("no READY within %v; output %q", readyTimeout, seen)
		}
	}
	return nil
}

// awaitEcho waits for the echo of c; any other byte is an error.
func awaitEcho(echoes <-chan byte, c byte) error {
	select {
	case got, ok := <-echoes:
		if !ok {
			return errors.New("session ended")
		}
		if got != c {
			return fmt.Errorf("echo %q, want %q", got, c)
		}
		return nil
	case <-time.After(echoTimeout):
		return fmt.Errorf("no echo within %v", echoTimeout)
	}
}

// runtimeStats is a reading of the scheduler-latency histogram and the GC
// and total CPU time of this process (runtime/metrics), so that an
// in-process run can say where a keystroke's time went.
type runtimeStats struct {
	sched      *metrics.Float64Histogram
	gcCPU, cpu float64
}

func readRuntimeStats() runtimeStats {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(s)
	return runtimeStats{sched: s[0].Value.Float64Histogram(), gcCPU: s[1].Value.Float64(), cpu: s[2].Value.Float64()}
}

// since describes the scheduler latency (time from runnable to running, of
// every goroutine: its p50 and p99) and GC's share of CPU between r0 and r.
func (r runtimeStats) since(r0 runtimeStats) string {
	counts := make([]uint64, len(r.sched.Counts))
	var total uint64
	for i := range counts {
		counts[i] = r.sched.Counts[i] - r0.sched.Counts[i]
		total += counts[i]
	}
	quantile := func(q float64) float64 {
		var acc uint64
		for i, c := range counts {
			acc += c
			if float64(acc) >= q*float64(total) {
				return r.sched.Buckets[i+1]
			}
		}
		return math.Inf(1)
	}
	gc := 0.0
	if cpu := r.cpu - r0.cpu; cpu > 0 {
		gc = (r.gcCPU - r0.gcCPU) / cpu
	}
	return fmt.Sprintf("scheduler latency p50 <= %.3f ms, p99 <= %.3f ms (%d goroutine wake-ups); GC %.0f%% of CPU",
		quantile(0.5)*1e3, quantile(0.99)*1e3, total, gc*100)
}

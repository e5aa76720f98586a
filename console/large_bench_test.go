package console_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/console"
	"github.com/jitssh/jitssh/internal/browsertest"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/sessionlog"
)

// BenchmarkLargeRecording measures the player on a large recording
// (JITSSH_LARGE_MB, default 200 MB of output, written through sessionlog's
// writer: 100-byte lines every 5 ms, so 200 MB spans about 2.8 hours):
// the server's time to cut a window at the start, middle and end (and,
// beside it, what reading every event up to there costs: the cut before
// sessionlog's SkipTo), and in
// Chromium the time to the first frame, the time of a seek to the end
// and the tab's JS heap. Run it once:
//
//	go test -tags sqlite_fts5 -run '^$' -bench LargeRecording -benchtime 1x ./console/
func BenchmarkLargeRecording(b *testing.B) {
	mb := 200
	if v := os.Getenv("JITSSH_LARGE_MB"); v != "" {
		mb, _ = strconv.Atoi(v)
	}
	e := newEnv(b)
	e.requirePlayer(b)
	x, duration := writeLarge(b, e, mb)
	for _, at := range []float64{0, duration / 2, duration - 30} {
		f, err := os.Open(x.RecordingPath)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		n, _ := countingWindow(f, at)
		f.Close()
		b.ReportMetric(time.Since(start).Seconds(), fmt.Sprintf("window_s_at_%.0f%%", 100*at/duration))
		b.ReportMetric(float64(n)/1e6, fmt.Sprintf("window_MB_at_%.0f%%", 100*at/duration))
		// What a window's start cost before SkipTo: every event before at
		// parsed by Next and discarded.
		f, err = os.Open(x.RecordingPath)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := discardTo(f, at); err != nil {
			b.Fatal(err)
		}
		f.Close()
		b.ReportMetric(time.Since(start).Seconds(), fmt.Sprintf("read_discard_s_at_%.0f%%", 100*at/duration))
	}
	br := browsertest.Start(b, browsertest.Options{TrustCertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.server.Certificate().Raw}), Timeout: 10 * time.Minute})
	if err := br.Do(time.Minute, chromedp.Navigate(e.server.URL+"/console/login#code="+e.code("sec")), chromedp.WaitVisible(chromedp.CSS("nav"))); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := br.Do(time.Minute, chromedp.Navigate(e.server.URL+"/console/sessions/"+x.ID+"/play")); err != nil {
		b.Fatal(err)
	}
	testkit.WaitFor(b, 2*time.Minute, "the first frame", func() bool { return strings.Contains(br.Text("#player"), "line ") })
	b.ReportMetric(time.Since(start).Seconds(), "first_frame_s")
	seekTo := func(at float64) {
		js := fmt.Sprintf(`(() => { const s = document.getElementById("seek"); s.value = %f; s.dispatchEvent(new Event("change")); return true })()`, at)
		if _, err := chromedp.Run(br.Ctx, chromedp.Evaluate[bool](js)); err != nil {
			b.Fatal(err)
		}
	}
	// A seek forward reads on from the cursor of the window playing; a
	// seek back reads from the start.
	for _, at := range []float64{duration / 2, duration / 4, duration - 30} {
		want := int(at/0.005) - 2 // the last line before at
		start = time.Now()
		seekTo(at)
		testkit.WaitFor(b, 3*time.Minute, fmt.Sprintf("line %d after the seek to %.0fs", want, at), func() bool {
			return maxLine(br.Text("#player")) >= want && maxLine(br.Text("#player")) < want+1000
		})
		b.ReportMetric(time.Since(start).Seconds(), fmt.Sprintf("seek_s_to_%.0f%%", 100*at/duration))
	}
	heap, err := chromedp.Run(br.Ctx, chromedp.Evaluate[float64](`performance.memory ? performance.memory.usedJSHeapSize : -1`))
	if err == nil {
		b.ReportMetric(heap/1e6, "tab_js_heap_MB")
	}
	b.ReportMetric(float64(mb), "recording_MB")
	if p := br.Problems(); len(p) > 0 {
		b.Errorf("player problems: %v", p)
	}
}

// writeLarge records mb MB of output for session s_large; the last
// output, about 10 s before the end, is END-OF-LARGE.
func writeLarge(b *testing.B, e *env, mb int) (audit.Session, float64) {
	b.Helper()
	path := filepath.Join(e.recordings, "s_large.cast")
	clock := testkit.NewClock(e.clock.Now())
	w, err := sessionlog.Create(path, sessionlog.Header{Version: 2, Width: 120, Height: 40}, sessionlog.WriterOptions{Clock: clock.Now, SyncInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 80))
	total, n := 0, 0
	for total < mb<<20 {
		clock.Advance(5 * time.Millisecond)
		out := fmt.Appendf(nil, "line %08d: %s\r\n", n, line)
		if err := w.Output(out); err != nil {
			b.Fatal(err)
		}
		total += len(out)
		n++
	}
	clock.Advance(10 * time.Second)
	if err := w.Output([]byte("END-OF-LARGE\r\n")); err != nil {
		b.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	duration := clock.Now().Sub(e.clock.Now()).Seconds()
	x := audit.Session{ID: "s_large", User: "alice", Host: "web1", Login: "root", Serial: 9, StartedAt: e.clock.Now(),
		EndedAt: clock.Now(), RecordingPath: path}
	if err := e.store.Do(context.Background(), func(tx *audit.Tx) error { return tx.InsertSession(x) }); err != nil {
		b.Fatal(err)
	}
	return x, duration
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

func countingWindow(r io.Reader, at float64) (int, error) {
	var c countWriter
	_, err := console.WriteWindow(&c, r, at, console.DefaultWindow)
	return c.n, err
}

// discardTo reads the events before at one by one, as the window cut did
// before it skipped.
func discardTo(r io.Reader, at float64) error {
	rd, err := sessionlog.NewReader(r)
	if err != nil {
		return err
	}
	for {
		e, err := rd.Next()
		if err == io.EOF || err == nil && e.Time >= at {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var lineNumber = regexp.MustCompile(`line ([0-9]{8})`)

// maxLine is the highest line number on the screen.
func maxLine(screen string) int {
	n := -1
	for _, m := range lineNumber.FindAllStringSubmatch(screen, -1) {
		if v, _ := strconv.Atoi(m[1]); v > n {
			n = v
		}
	}
	return n
}

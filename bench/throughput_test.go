package bench

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // read the audit store's catch-up positions
)

// Transfer sizes of BenchmarkThroughput, per direction and path.
const (
	execBytes       = 1 << 30   // 1 GiB through a plain exec channel
	ptyBytes        = 256 << 20 // 256 MiB through a pty (raw mode)
	textBytes       = 256 << 20 // 256 MiB of text lines through a plain exec channel
	transferTimeout = 5 * time.Minute
)

// transferPath is one way of reaching the target.
type transferPath struct {
	name string
	cmd  func(context.Context, ...string) *exec.Cmd
}

// BenchmarkThroughput moves bytes each way through the bastion (recording
// on), through OpenSSH ProxyJump and straight to the target sshd, as exec
// (wc -c reading stdin; head -c from /dev/zero) and through a pty (ssh -tt,
// stty raw -echo, the same commands). Every transfer checks the byte count.
// Sub-benchmarks report MB/s (10^6 bytes) per path and bastion/ProxyJump.
func BenchmarkThroughput(b *testing.B) {
	p := setupPaths(b, inProcess)
	all := []transferPath{
		{name: "bastion", cmd: p.bastion},
		{name: "proxyjump", cmd: p.proxyJump},
		{name: "direct", cmd: p.direct},
	}
	cases := []struct {
		name string
		n    int64
		run  func(*testing.B, transferPath, int64) error
	}{
		{name: "exec-upload", n: execBytes, run: execUpload},
		{name: "exec-download", n: execBytes, run: execDownload},
		{name: "pty-upload", n: ptyBytes, run: ptyUpload},
		{name: "pty-download", n: ptyBytes, run: ptyDownload},
		{name: "text-download", n: textBytes, run: textDownload},
	}
	recordings := filepath.Join(p.env.dir, "recordings")
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			rate := map[string]float64{}
			var recorded int64
			var catchUp float64
			for i := 0; i < b.N; i++ {
				for _, path := range all {
					before := dirSize(recordings)
					start := time.Now()
					if err := tc.run(b, path, tc.n); err != nil {
						b.Fatalf("%s %s: %v", path.name, tc.name, err)
					}
					rate[path.name] = float64(tc.n) / 1e6 / time.Since(start).Seconds()
					if path.name == "bastion" {
						// Indexing that fell behind goes on from the
						// recording after the session; it must not run
						// into the other paths' legs.
						wait, err := waitIndexed(filepath.Join(p.env.dir, "jitssh.db"))
						if err != nil {
							b.Fatal(err)
						}
						catchUp = wait.Seconds()
						recorded = dirSize(recordings) - before
					}
				}
			}
			for _, path := range all {
				b.ReportMetric(rate[path.name], path.name+"_MB/s")
			}
			b.ReportMetric(rate["bastion"]/rate["proxyjump"], "bastion/proxyjump")
			// Footprint: bytes of recording written per byte the session
			// carried.
			b.ReportMetric(float64(recorded)/float64(tc.n), "recorded_B/B")
			b.ReportMetric(catchUp, "index_catchup_s")
			b.ReportMetric(rate["bastion"]/rate["direct"], "bastion/direct")
			b.ReportMetric(rate["proxyjump"]/rate["direct"], "proxyjump/direct")
			b.Logf("%s %d MiB: bastion %.0f MB/s, ProxyJump %.0f MB/s, direct %.0f MB/s; bastion/ProxyJump %.2f; recording grew %d bytes (%.3f per byte carried); search index complete %.1f s after the session",
				tc.name, tc.n>>20, rate["bastion"], rate["proxyjump"], rate["direct"], rate["bastion"]/rate["proxyjump"], recorded, float64(recorded)/float64(tc.n), catchUp)
		})
	}
}

// zeros reads as an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// counter counts what is written to it.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// execUpload sends n bytes into `wc -c` and checks the count it prints.
func execUpload(b *testing.B, path transferPath, n int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	cmd := path.cmd(ctx, "wc -c")
	cmd.Stdin = io.LimitReader(zeros{}, n)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("ssh: %w: %s", err, stderrOf(err))
	}
	return checkCount(out, n)
}

// execDownload reads n bytes from `head -c N /dev/zero`.
func execDownload(b *testing.B, path transferPath, n int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	cmd := path.cmd(ctx, fmt.Sprintf("head -c %d /dev/zero", n))
	var c counter
	cmd.Stdout = &c
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	if c.n != n {
		return fmt.Errorf("received %d bytes, want %d", c.n, n)
	}
	return nil
}

// textLine is what textDownload repeats: a log-like line of text, which
// the bastion records as text and indexes for search, unlike the zeros of
// the other downloads, which it records as binary.
const textLine = "2026-11-26T03:04:05Z web1 app[4242]: GET /api/v1/items?page=17 200 1532 bytes in 12ms"

// textDownload reads n bytes of repeated text lines (`yes LINE | head -c N`).
func textDownload(b *testing.B, path transferPath, n int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	cmd := path.cmd(ctx, fmt.Sprintf("yes '%s' | head -c %d", textLine, n))
	var c counter
	cmd.Stdout = &c
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	if c.n != n {
		return fmt.Errorf("received %d bytes, want %d", c.n, n)
	}
	return nil
}

// ptyDownload reads n bytes through a pty in raw mode.
func ptyDownload(b *testing.B, path transferPath, n int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	cmd := path.cmd(ctx, "-tt", fmt.Sprintf("stty raw -echo; head -c %d /dev/zero", n))
	var c counter
	cmd.Stdout = &c
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ssh -tt: %w", err)
	}
	if c.n != n {
		return fmt.Errorf("received %d bytes through the pty, want %d", c.n, n)
	}
	return nil
}

// ptyUpload switches the remote pty to raw mode, waits for READY, then
// writes n bytes that `head -c N | wc -c` counts.
func ptyUpload(b *testing.B, path transferPath, n int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	cmd := path.cmd(ctx, "-tt", fmt.Sprintf("stty raw -echo; echo READY; head -c %d | wc -c", n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var rest []byte
	err = func() error {
		out := bufio.NewReader(stdout)
		line, err := out.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "READY" {
			return fmt.Errorf("waiting for READY: got %q: %v", line, err)
		}
		if _, err := io.Copy(stdin, io.LimitReader(zeros{}, n)); err != nil {
			return fmt.Errorf("write to ssh -tt: %w", err)
		}
		if rest, err = io.ReadAll(out); err != nil {
			return fmt.Errorf("read count: %w", err)
		}
		return nil
	}()
	_ = stdin.Close()
	if err != nil {
		_ = cmd.Process.Kill()
	}
	werr := cmd.Wait()
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("ssh -tt: %w", werr)
	}
	return checkCount(rest, n)
}

func checkCount(out []byte, n int64) error {
	got, err := parseCount(out)
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("remote counted %d bytes, want %d", got, n)
	}
	return nil
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// Bounds of waitIndexed.
const (
	indexWaitMax  = 3 * time.Minute
	indexWaitPoll = 100 * time.Millisecond
	indexGrace    = 1500 * time.Millisecond
)

// waitIndexed waits until the audit store at db holds no search index
// catch-up (index_pending is empty), at most indexWaitMax, and returns how
// long that took. It first gives the session indexGrace to end: an indexer
// stores its position at its first flush after falling behind.
func waitIndexed(db string) (time.Duration, error) {
	time.Sleep(indexGrace)
	conn, err := sql.Open("sqlite3", "file:"+db+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", db, err)
	}
	defer conn.Close()
	start := time.Now()
	for {
		var n int
		if err := conn.QueryRow("SELECT count(*) FROM index_pending").Scan(&n); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				return 0, nil // a tree from before catch-ups, for comparison
			}
			return 0, fmt.Errorf("read index_pending of %s: %w", db, err)
		}
		if n == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > indexWaitMax {
			return 0, fmt.Errorf("search index catch-up not done %v after the session (%d pending)", indexWaitMax, n)
		}
		time.Sleep(indexWaitPoll)
	}
}

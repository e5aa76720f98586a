package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

// Bounds of BenchmarkIdleSessionMemory.
const (
	idleSessions  = 200              // concurrent idle sessions per path
	openParallel  = 10               // sessions being opened at once
	openTimeout   = 30 * time.Second // per session, until its shell says ready
	settleTime    = 2 * time.Second  // after the last session opened, before measuring
	idleCommand   = "echo ready; exec sleep 600"
	processStopIn = 10 * time.Second
)

// BenchmarkIdleSessionMemory opens idleSessions concurrent idle pty
// sessions (ssh -tt ... sleep 600) through a jitd process's bastion, with
// recording on, and reports the growth of jitd's PSS per session; then the
// same number straight to a plain sshd, reporting the PSS of sshd's
// per-connection processes per session. Every client is killed at the end.
func BenchmarkIdleSessionMemory(b *testing.B) {
	var jitdPID int
	p := setupPaths(b, func(b *testing.B, env *daemonEnv, login string, hosts []benchHost) {
		jitdPID = runJitdProcess(b, env, login, hosts)
	})
	var bastionKiB, sshdKiB, sshdProcs float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runOK(b, "bastion warm-up", p.bastion(context.Background(), "-tt", "true"))
		time.Sleep(settleTime)
		before, err := pss(jitdPID)
		if err != nil {
			b.Fatal(err)
		}
		stop := openIdle(b, "bastion", p.bastion)
		time.Sleep(settleTime)
		after, err := pss(jitdPID)
		stop()
		if err != nil {
			b.Fatal(err)
		}
		bastionKiB = float64(after-before) / idleSessions
		b.Logf("jitd PSS %d KiB before, %d KiB with %d idle recorded sessions", before, after, idleSessions)

		listener, err := sshdPID(p.target)
		if err != nil {
			b.Fatal(err)
		}
		// The bastion's onward connections end after its clients; wait
		// until they are gone so that they are not counted below.
		if err := waitNoChildren(listener, "sshd", 30*time.Second); err != nil {
			b.Fatal(err)
		}
		stop = openIdle(b, "direct", p.direct)
		time.Sleep(settleTime)
		total, n, names, err := childrenPSS(listener, "sshd")
		stop()
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("processes under the sshd listener with %d sessions: %v; sshd ones: %d KiB PSS in all", idleSessions, names, total)
		sshdKiB = float64(total) / idleSessions
		sshdProcs = float64(n) / idleSessions
	}
	b.StopTimer()
	b.ReportMetric(bastionKiB, "bastion_KiB/session")
	b.ReportMetric(sshdKiB, "sshd_KiB/session")
	b.ReportMetric(sshdProcs, "sshd_procs/session")
	b.ReportMetric(bastionKiB/sshdKiB, "bastion/sshd")
	b.Logf("idle pty sessions (%d): jitd bastion %.0f KiB/session (PSS growth, recording on); sshd %.0f KiB/session in %.1f processes/session; ratio %.3f",
		idleSessions, bastionKiB, sshdKiB, sshdProcs, bastionKiB/sshdKiB)
}

// openIdle opens idleSessions idle pty sessions with cmd, openParallel at a
// time, each ready once its remote shell printed "ready". The returned stop
// kills every client and waits for it.
func openIdle(b *testing.B, name string, cmd func(context.Context, ...string) *exec.Cmd) (stop func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var cmds []*exec.Cmd
	stop = func() {
		cancel() // CommandContext kills every client
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cmds {
			_ = c.Wait()
		}
		cmds = nil
	}
	sem := make(chan struct{}, openParallel)
	errs := make(chan error, idleSessions)
	var wg sync.WaitGroup
	for i := 0; i < idleSessions; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := cmd(ctx, "-tt", idleCommand)
			if _, err := c.StdinPipe(); err != nil { // held open: the session stays idle, not at EOF
				errs <- err
				return
			}
			out, err := c.StdoutPipe()
			if err != nil {
				errs <- err
				return
			}
			if err := c.Start(); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			cmds = append(cmds, c)
			mu.Unlock()
			ready := make(chan error, 1)
			go func() {
				// The login's shell start-up files may print first.
				r := bufio.NewReader(out)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						ready <- fmt.Errorf("before ready: %w (last line %q)", err, line)
						return
					}
					if strings.TrimSpace(line) == "ready" {
						ready <- nil
						return
					}
				}
			}()
			select {
			case err := <-ready:
				if err != nil {
					errs <- fmt.Errorf("%s session %d: %w", name, i, err)
				}
			case <-time.After(openTimeout):
				errs <- fmt.Errorf("%s session %d: not ready within %v", name, i, openTimeout)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		stop()
		b.Fatalf("open %d idle sessions: %v", idleSessions, err)
	}
	return stop
}

// runJitdProcess builds cmd/jitd, writes the policy and runs `jitd serve`
// as its own process on free loopback ports until the benchmark ends. It
// returns the process id.
func runJitdProcess(b *testing.B, env *daemonEnv, login string, hosts []benchHost) int {
	b.Helper()
	bin := buildJitd(b)
	if err := writePolicy(env.dir, env.user.PublicKey(), login, hosts); err != nil {
		b.Fatal(err)
	}
	apiAddr, bastionAddr := freeAddr(b), freeAddr(b)
	pid := serveJitd(b, bin, env.dir, []string{"--api", apiAddr, "--bastion", bastionAddr, "--egress", "127.0.0.1/32",
		"--bastion-max-unauth-per-addr", "4096", "--bastion-max-unauth", "4096", "--login-rate", "1048576/1m", "--request-rate", "1048576/1m"},
		apiAddr, bastionAddr)
	env.addrs.API, env.addrs.Bastion = apiAddr, bastionAddr
	return pid
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening waits until addr accepts connections, at most 30 s, or
// until exited is closed.
func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited before listening on %s", addr)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			return c.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not listening on %s within 30s", addr)
}

// pss returns the proportional set size of pid in KiB.
func pss(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, fmt.Errorf("read smaps_rollup of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no Pss line in /proc/%d/smaps_rollup", pid)
}

// sshdPID reads the listening sshd's pid file.
func sshdPID(s *sshdtest.Server) (int, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, "sshd.pid"))
	if err != nil {
		return 0, fmt.Errorf("sshd pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("sshd pid file %q: %w", data, err)
	}
	return pid, nil
}

// childrenPSS sums the PSS (KiB) of root's descendants whose command name
// is comm, and counts them; root itself is not included. names counts every
// descendant by command name.
func childrenPSS(root int, comm string) (total int64, n int, names map[string]int, err error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, nil, err
	}
	names = map[string]int{}
	parent := map[int]int{}
	name := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may contain spaces and parentheses.
		open, closing := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(string(stat[closing+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		parent[pid], name[pid] = ppid, string(stat[open+1:closing])
	}
	for pid := range parent {
		if pid == root {
			continue
		}
		under := false
		for q, hops := parent[pid], 0; q > 1 && hops < 64; q, hops = parent[q], hops+1 {
			if q == root {
				under = true
				break
			}
		}
		if !under {
			continue
		}
		names[name[pid]]++
		if name[pid] != comm {
			continue
		}
		kib, err := pss(pid)
		if err != nil {
			continue // exited meanwhile
		}
		total += kib
		n++
	}
	return total, n, names, nil
}

// waitNoChildren waits until root has no descendant named comm, at most
// timeout.
func waitNoChildren(root int, comm string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, n, _, err := childrenPSS(root, comm)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d %s processes still under pid %d after %v", n, comm, root, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/daemon"
	"github.com/jitssh/jitssh/sessionlog"
)

// Bounds of BenchmarkManySessions.
const (
	manySessions    = 500
	manyStreaming   = 100     // of manySessions, streaming text at once
	perConn         = 10      // sessions per SSH connection: sshd's default MaxSessions
	streamPerBytes  = 4 << 20 // each streaming session's text
	manyOpenTimeout = 2 * time.Minute
	manyStreamTime  = 5 * time.Minute
	manyCheckTime   = time.Minute // until every recording holds its session's data
	sampleEvery     = 200 * time.Millisecond
)

// manySession is one of BenchmarkManySessions' sessions: its tag is in its
// command line (and so in its recording's header) and in every byte of its
// output.
type manySession struct {
	tag    string
	stream bool
	s      *ssh.Session
	stdin  io.WriteCloser
	stdout io.Reader
}

func (m *manySession) line() string {
	return m.tag + " stream line of the 500-session run, every byte checked"
}

func (m *manySession) command() string {
	if m.stream {
		return fmt.Sprintf("echo ready-%s; read go; yes '%s' | head -c %d", m.tag, m.line(), streamPerBytes)
	}
	return "echo ready-" + m.tag + "; exec sleep 600"
}

// want is what the session's recording must hold as output, exactly.
func (m *manySession) want() string {
	if !m.stream {
		return "ready-" + m.tag + "\r\n" // a pty's newline
	}
	return "ready-" + m.tag + "\n" + m.wantStream()
}

func (m *manySession) wantStream() string {
	l := m.line() + "\n"
	return strings.Repeat(l, streamPerBytes/len(l)+1)[:streamPerBytes]
}

// BenchmarkManySessions is the 500-session run of issue 15: manySessions
// concurrent recorded sessions through a jitd process's bastion to the
// target sshd, manyStreaming of them streaming streamPerBytes of text each
// at the same time while the others sit idle in a pty. A Go SSH client in
// this process carries them, perConn sessions per connection (as
// OpenSSH's ControlMaster would, up to sshd's MaxSessions of 10), so that
// no client processes crowd the machine. Checked: every byte arrives, and
// each recording holds exactly its own session's output, nothing of
// another's. Reported: jitd's PSS growth per open session before the
// streams start, its peak while they run, and jitd's CPU time per MB
// streamed.
func BenchmarkManySessions(b *testing.B) {
	var jitdPID int
	p := setupPaths(b, func(b *testing.B, env *daemonEnv, login string, hosts []benchHost) {
		jitdPID = runJitdProcess(b, env, login, hosts)
	})
	cfg, err := p.goClientConfig()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		runOK(b, "bastion warm-up", p.bastion(context.Background(), "-tt", "true"))
		time.Sleep(settleTime)
		before, err := pss(jitdPID)
		if err != nil {
			b.Fatal(err)
		}
		sessions, closeAll, err := openMany(p.env.addrs.Bastion, cfg)
		b.Cleanup(closeAll)
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(settleTime)
		idle, err := pss(jitdPID)
		if err != nil {
			b.Fatal(err)
		}
		cpu0, err := cpuTime(jitdPID)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		peak, err := streamAll(sessions, jitdPID)
		if err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		closeAll()
		if err := checkRecordings(filepath.Join(p.env.dir, "recordings"), sessions); err != nil {
			b.Fatal(err)
		}
		// The streams' CPU includes indexing their text, which may go on
		// after them (catch-ups from the recordings).
		cpu1, err := waitIdleCPU(jitdPID)
		if err != nil {
			b.Fatal(err)
		}
		mb := float64(manyStreaming) * streamPerBytes / 1e6
		perSession := float64(idle-before) / manySessions
		cpuPerMB := (cpu1 - cpu0).Seconds() * 1e3 / mb
		b.ReportMetric(perSession, "idle_KiB/session")
		b.ReportMetric(float64(peak-idle)/manyStreaming, "peak_KiB/stream")
		b.ReportMetric(cpuPerMB, "jitd_cpu_ms/MB")
		b.ReportMetric(mb/elapsed.Seconds(), "streams_MB/s")
		b.ReportMetric(0, "ns/op")
		b.Logf("%d sessions (%d streaming %d MiB each): jitd PSS %d KiB before, %d KiB with all open (%.0f KiB/session), peak %d KiB while streaming (%.0f KiB more per stream); %.0f MB in %.1f s (%.0f MB/s), jitd CPU %.2f s (%.1f ms/MB); every recording holds exactly its own session's output",
			manySessions, manyStreaming, streamPerBytes>>20, before, idle, perSession, peak, float64(peak-idle)/manyStreaming, mb, elapsed.Seconds(), mb/elapsed.Seconds(),
			(cpu1 - cpu0).Seconds(), cpuPerMB)
	}
}

// goClientConfig is an x/crypto client with the engineer's certificate,
// trusting the host CA for the bastion's alias, as the ssh command does.
func (p *paths) goClientConfig() (*ssh.ClientConfig, error) {
	keyPEM, err := os.ReadFile(p.engKey)
	if err != nil {
		return nil, err
	}
	key, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("engineer key: %w", err)
	}
	certLine, err := os.ReadFile(p.engKey + "-cert.pub")
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certLine)
	if err != nil {
		return nil, fmt.Errorf("engineer certificate: %w", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, errors.New("engineer certificate: not a certificate")
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, err
	}
	hostCA := p.env.keys.Host.PublicKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return bytes.Equal(auth.Marshal(), hostCA) }}
	return &ssh.ClientConfig{
		User: p.login + "@" + targetHost,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, remote net.Addr, k ssh.PublicKey) error {
			return checker.CheckHostKey(daemon.BastionHostKeyAlias+":22", remote, k)
		},
		Timeout: 30 * time.Second,
	}, nil
}

// openMany opens manySessions sessions on connections of perConn each
// (manyStreaming/… of each connection's streaming), perConn connections
// at a time, each ready once its ready line arrived. closeAll ends them.
func openMany(addr string, cfg *ssh.ClientConfig) ([]*manySession, func(), error) {
	conns := manySessions / perConn
	streamEvery := manySessions / manyStreaming
	sessions := make([]*manySession, manySessions)
	clients := make([]*ssh.Client, conns)
	var once sync.Once
	closeAll := func() {
		once.Do(func() {
			for _, m := range sessions {
				if m != nil && m.s != nil {
					_ = m.s.Close()
				}
			}
			for _, c := range clients {
				if c != nil {
					_ = c.Close()
				}
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), manyOpenTimeout)
	defer cancel()
	sem := make(chan struct{}, perConn)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for c := 0; c < conns; c++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			client, err := ssh.Dial("tcp", addr, cfg)
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", c, err)
				return
			}
			clients[c] = client
			for j := 0; j < perConn; j++ {
				n := c*perConn + j
				m := &manySession{tag: fmt.Sprintf("s%03d-%s", n, strconv.FormatInt(time.Now().UnixNano()%1e6, 36)), stream: n%streamEvery == 0}
				sessions[n] = m
				if err := m.open(ctx, client); err != nil {
					errs <- fmt.Errorf("session %d: %w", n, err)
					return
				}
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
		closeAll()
		return nil, closeAll, fmt.Errorf("open %d sessions: %w", manySessions, err)
	}
	return sessions, closeAll, nil
}

// open starts the session's command and waits for its ready line.
func (m *manySession) open(ctx context.Context, c *ssh.Client) error {
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	m.s = s
	if !m.stream {
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
			return fmt.Errorf("pty: %w", err)
		}
	}
	if m.stdin, err = s.StdinPipe(); err != nil {
		return err
	}
	out, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	if err := s.Start(m.command()); err != nil {
		return err
	}
	br := bufio.NewReader(out)
	m.stdout = br
	ready := make(chan error, 1)
	go func() {
		line, err := br.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready-"+m.tag {
			err = fmt.Errorf("first line %q, want ready-%s", line, m.tag)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		return err
	case <-ctx.Done():
		return fmt.Errorf("not ready: %w", ctx.Err())
	}
}

// streamAll starts every streaming session at once, reads each to its end
// and checks what arrived; it returns jitd's peak PSS meanwhile.
func streamAll(sessions []*manySession, pid int) (peak int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), manyStreamTime)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, manyStreaming)
	for _, m := range sessions {
		if !m.stream {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.WriteString(m.stdin, "go\n"); err != nil {
				errs <- fmt.Errorf("%s: start: %w", m.tag, err)
				return
			}
			got, err := io.ReadAll(io.LimitReader(m.stdout, streamPerBytes+1))
			if err == nil && string(got) != m.wantStream() {
				err = fmt.Errorf("received %d bytes, want %d of its own lines (first difference at %d)", len(got), streamPerBytes, firstDiff(string(got), m.wantStream()))
			}
			if err == nil {
				err = m.s.Wait()
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", m.tag, err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			close(errs)
			var all []error
			for err := range errs {
				all = append(all, err)
			}
			return peak, errors.Join(all...)
		case <-ctx.Done():
			return peak, fmt.Errorf("streams not done within %v", manyStreamTime)
		case <-t.C:
			if v, err := pss(pid); err == nil {
				peak = max(peak, v)
			}
		}
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// checkRecordings waits (at most manyCheckTime) until the recording of
// every session, found by the tag in its header's command, holds exactly
// the session's output.
func checkRecordings(dir string, sessions []*manySession) error {
	byTag := make(map[string]*manySession, len(sessions))
	for _, m := range sessions {
		byTag[m.tag] = m
	}
	deadline := time.Now().Add(manyCheckTime)
	for {
		bad, err := recordingsMismatch(dir, byTag)
		if err == nil && len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("%d recordings do not hold exactly their own session's output after %v; first: %s", len(bad), manyCheckTime, bad[0])
		}
		time.Sleep(time.Second)
	}
}

// recordingsMismatch lists the sessions whose recording is missing or does
// not hold exactly their output.
func recordingsMismatch(dir string, byTag map[string]*manySession) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*", "*", "*", "*.cast*")) // .cast.zst since issue 15
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	var bad []string
	for _, f := range files {
		out, cmd, err := recordedOutput(f)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		var m *manySession
		for tag, s := range byTag {
			if strings.Contains(cmd, "ready-"+tag+";") {
				m = s
				break
			}
		}
		if m == nil {
			continue // the warm-up session
		}
		found[m.tag] = true
		if want := m.want(); out != want {
			bad = append(bad, fmt.Sprintf("%s (%s): %d bytes of output, want %d, first difference at %d", m.tag, f, len(out), len(want), firstDiff(out, want)))
		}
	}
	for tag := range byTag {
		if !found[tag] {
			bad = append(bad, tag+": no recording")
		}
	}
	return bad, nil
}

// recordedOutput returns a recording's output and its header's command.
func recordedOutput(path string) (out, command string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	rec, err := sessionlog.ReadAll(f)
	if err != nil {
		return "", "", err
	}
	var sb strings.Builder
	for _, e := range rec.Events {
		if e.Code == sessionlog.CodeOutput || e.Code == sessionlog.CodeBinaryOutput {
			p, err := e.Bytes()
			if err != nil {
				return "", "", err
			}
			sb.Write(p)
		}
	}
	return sb.String(), rec.Header.Command, nil
}

// cpuTime is the user and system CPU time pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which ends with the last ')'.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, nil
}

// waitIdleCPU waits (at most manyCheckTime) until pid has used under 2% of
// a core for a second, and returns its CPU time then.
func waitIdleCPU(pid int) (time.Duration, error) {
	deadline := time.Now().Add(manyCheckTime)
	prev, err := cpuTime(pid)
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		var now time.Duration
		if now, err = cpuTime(pid); err == nil && now-prev < 20*time.Millisecond {
			return now, nil
		}
		prev = now
	}
	if err != nil {
		return 0, err
	}
	return prev, fmt.Errorf("jitd still busy %v after the streams", manyCheckTime)
}

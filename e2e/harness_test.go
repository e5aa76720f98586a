package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// Bounds on every wait, so a hung process fails a test instead of the run.
const (
	daemonStartTimeout = 10 * time.Second
	daemonStopTimeout  = 10 * time.Second
	commandTimeout     = 60 * time.Second
)

// binaries builds jitd and jit once per test binary into a temporary
// directory and returns that directory. It is a sync.OnceValues, so the
// package holds no state that tests assign.
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "jitssh-e2e-bin-")
	if err != nil {
		return "", fmt.Errorf("make binary dir: %w", err)
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return dir, fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	build := exec.Command("go", "build", "-tags", "sqlite_fts5", "-o", dir+string(os.PathSeparator), "./cmd/jitd", "./cmd/jit")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return dir, fmt.Errorf("go build jitd and jit in %s: %w\n%s", root, err, out)
	}
	return dir, nil
})

func TestMain(m *testing.M) {
	dir, err := binaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		if dir != "" {
			os.RemoveAll(dir)
		}
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bin returns the path of a built binary ("jit" or "jitd").
func bin(t testing.TB, name string) string {
	t.Helper()
	dir, err := binaries()
	if err != nil {
		t.Fatalf("build binaries: %v", err)
	}
	return filepath.Join(dir, name)
}

// engineer is one person at their own machine: a JIT_HOME and an enrolled
// ed25519 key.
type engineer struct {
	Name string
	Home string // JIT_HOME (and HOME) of their jit commands
	Key  string // private key file, 0600
	// AuthorizedKey is the public key as one authorized_keys line without
	// a newline, for the policy file.
	AuthorizedKey string
	// ExtraEnv is added to the environment of e's jit commands, e.g.
	// SSH_AUTH_SOCK for a test's own ssh-agent.
	ExtraEnv []string
}

func newEngineer(t testing.TB, name string) *engineer {
	t.Helper()
	signer, pemKey := testkit.SignerPEM(t, name+"@e2e")
	home := t.TempDir()
	key := filepath.Join(home, "id_ed25519")
	if err := os.WriteFile(key, pemKey, 0o600); err != nil {
		t.Fatalf("write key of %s: %v", name, err)
	}
	return &engineer{
		Name: name, Home: home, Key: key,
		AuthorizedKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + name + "@e2e",
	}
}

// env is the environment of e's jit commands: their own JIT_HOME, no
// ssh-agent unless ExtraEnv names one, CI passed through.
func (e *engineer) env() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.Home, "JIT_HOME=" + e.Home, "TZ=UTC"}
	if ci, ok := os.LookupEnv("CI"); ok {
		env = append(env, "CI="+ci)
	}
	return append(env, e.ExtraEnv...)
}

// result is how a jit command ended.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// run runs jit as e and returns its output and exit code. It fails the test
// only if jit cannot be started or does not finish within commandTimeout.
func run(t testing.TB, e *engineer, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r := start(t, e, args...).wait(t, commandTimeout)
	return r.Stdout, r.Stderr, r.Code
}

// mustRun runs jit as e and fails the test unless it exits 0.
func mustRun(t testing.TB, e *engineer, args ...string) string {
	t.Helper()
	r := start(t, e, args...).wait(t, commandTimeout)
	if r.Code != 0 {
		t.Fatalf("%s: jit %s: %v", e.Name, strings.Join(args, " "), r)
	}
	return r.Stdout
}

// background is a jit command running while the test does other things.
type background struct {
	args           []string
	cmd            *exec.Cmd
	stdout, stderr *testkit.Buffer
	done           chan struct{}
}

// start starts jit as e without waiting for it; the process is killed in
// t.Cleanup if the test did not wait for it.
func start(t testing.TB, e *engineer, args ...string) *background {
	t.Helper()
	cmd := exec.Command(bin(t, "jit"), args...)
	cmd.Env = e.env()
	cmd.Dir = e.Home
	return startCommand(t, cmd, args...)
}

// startCommand starts cmd, a jit command line built by the caller (e.g.
// inside a network namespace), as start does; args name it in failures.
func startCommand(t testing.TB, cmd *exec.Cmd, args ...string) *background {
	t.Helper()
	b := &background{args: args, cmd: cmd, stdout: &testkit.Buffer{}, stderr: &testkit.Buffer{}, done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b.stdout, b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start jit %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// wait waits at most timeout for the command to exit; past that it kills it
// and fails the test.
func (b *background) wait(t testing.TB, timeout time.Duration) result {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(timeout):
		_ = b.cmd.Process.Kill()
		<-b.done
		t.Fatalf("jit %s did not exit within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(b.args, " "), timeout, b.stdout, b.stderr)
	}
	return result{Stdout: b.stdout.String(), Stderr: b.stderr.String(), Code: b.cmd.ProcessState.ExitCode()}
}

// exited reports whether the command has finished.
func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// daemon is a jitd data directory, and once served, the running process.
type daemon struct {
	Data   string
	UserCA ssh.PublicKey // DATA/ca/user_ca.pub

	API         string // host:port
	Bastion     string // host:port, empty without --bastion
	Fingerprint string // SHA256:... of the API's TLS certificate
	// Env is added to jitd's environment (such as the AWS credentials of
	// an object store).
	Env []string
	// StartTimeout bounds the wait for "jitd serving" (zero:
	// daemonStartTimeout); a restart right after a SIGKILL waits out the
	// killed process's heartbeat first.
	StartTimeout time.Duration

	cmd  *exec.Cmd
	log  *testkit.Buffer
	done chan struct{}
	// terminated is set once the test itself stopped the daemon.
	terminated bool
}

// initDaemon runs jitd init in a fresh data directory.
func initDaemon(t testing.TB) *daemon {
	t.Helper()
	d := &daemon{Data: filepath.Join(t.TempDir(), "data")}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin(t, "jitd"), "init", "--data", d.Data).CombinedOutput()
	if err != nil {
		t.Fatalf("jitd init: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(d.Data, "ca", "user_ca.pub"))
	if err != nil {
		t.Fatalf("read user CA: %v", err)
	}
	if d.UserCA, _, _, _, err = ssh.ParseAuthorizedKey(b); err != nil {
		t.Fatalf("parse user CA: %v", err)
	}
	return d
}

// startDaemon inits a data directory and serves policy from it with
// extra jitd serve flags (such as "--bastion", "127.0.0.1:0"), for tests
// whose policy does not need the user CA first.
func startDaemon(t testing.TB, policy string, extra ...string) *daemon {
	t.Helper()
	d := initDaemon(t)
	d.serve(t, policy, extra...)
	return d
}

// servingLine is the log line jitd serve writes once it listens.
var servingLine = regexp.MustCompile(`msg="jitd serving" api=(\S+) bastion=(\S+) tls_fingerprint=(\S+)`)

// serve overwrites DATA/policy.yaml with policy and starts `jitd serve` on
// 127.0.0.1:0 with extra flags, waits for its "jitd serving" line and
// registers a cleanup that stops it with SIGTERM and checks that it exited
// cleanly.
func (d *daemon) serve(t testing.TB, policy string, extra ...string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(d.Data, "policy.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatalf("write policy: %v", err)
	}
	args := append([]string{"serve", "--data", d.Data, "--api", "127.0.0.1:0"}, extra...)
	d.cmd = exec.Command(bin(t, "jitd"), args...)
	if d.Env != nil {
		d.cmd.Env = append(os.Environ(), d.Env...)
	}
	d.log = &testkit.Buffer{}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.done = make(chan struct{})
	d.terminated = false
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start jitd serve: %v", err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() { d.stop(t) })

	deadline := time.Now().Add(cmp.Or(d.StartTimeout, daemonStartTimeout))
	for {
		if m := servingLine.FindStringSubmatch(d.log.String()); m != nil {
			d.API, d.Fingerprint = m[1], m[3]
			if m[2] != `""` {
				d.Bastion = m[2]
			}
			return
		}
		select {
		case <-d.done:
			t.Fatalf("jitd serve exited before serving: %v\n%s", d.cmd.ProcessState, d.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("jitd serve did not log %q within %v:\n%s", "jitd serving", cmp.Or(d.StartTimeout, daemonStartTimeout), d.log)
		}
	}
}

// stop sends SIGTERM and waits; a daemon that needs SIGKILL or exits
// non-zero fails the test. A daemon the test already terminated is left be.
func (d *daemon) stop(t testing.TB) {
	if d.terminated {
		return
	}
	select {
	case <-d.done:
		t.Errorf("jitd serve exited by itself: %v\n%s", d.cmd.ProcessState, d.log)
		return
	default:
	}
	d.terminate(t)
}

// terminate sends SIGTERM now, in the middle of a test, and waits as stop
// does; the cleanup that serve registered then does nothing.
func (d *daemon) terminate(t testing.TB) {
	d.terminated = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("jitd serve exited %d after SIGTERM:\n%s", code, d.log)
		}
	case <-time.After(daemonStopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("jitd serve did not stop within %v of SIGTERM; killed:\n%s", daemonStopTimeout, d.log)
	}
	if t.Failed() {
		t.Logf("jitd log:\n%s", d.log)
	}
}

// login runs jit login as e against d with e's key file and fails the test
// if it does not succeed.
func (d *daemon) login(t testing.TB, e *engineer) {
	t.Helper()
	mustRun(t, e, "login", "--ca", "https://"+d.API, "--fingerprint", d.Fingerprint, "--user", e.Name, "-i", e.Key)
}

// renderPolicy fills a policy template. Its data: .Key.NAME is the quoted
// authorized_keys line of each engineer, .Login the local login that the
// test sshd accepts, and .Addr.HOST the address of each test sshd.
func renderPolicy(t testing.TB, text string, login string, engineers []*engineer, servers map[string]*sshdtest.Server) string {
	t.Helper()
	data := struct {
		Key   map[string]string
		Login string
		Addr  map[string]string
	}{Key: map[string]string{}, Login: login, Addr: map[string]string{}}
	for _, e := range engineers {
		q, err := json.Marshal(e.AuthorizedKey) // a JSON string is a YAML double-quoted scalar
		if err != nil {
			t.Fatal(err)
		}
		data.Key[e.Name] = string(q)
	}
	for name, s := range servers {
		data.Addr[name] = s.Addr
	}
	tmpl, err := template.New("policy").Option("missingkey=error").Parse(text)
	if err != nil {
		t.Fatalf("parse policy template: %v", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatalf("render policy: %v", err)
	}
	return b.String()
}

// targetSSHD starts a real sshd that trusts d's user CA and accepts the
// principal LOGIN@host, as a target of a direct certificate login (issue 2:
// OpenSSH makes the same check as the bastion).
func (d *daemon) targetSSHD(t testing.TB, host string) *sshdtest.Server {
	t.Helper()
	return sshdtest.Start(t, sshdtest.Config{
		TrustedUserCAKeys: []ssh.PublicKey{d.UserCA},
		Principals:        []string{sshdtest.LocalUser(t) + "@" + host},
	})
}

// sshTrue runs the stock `ssh ... true` against s with the key at keyPath
// (OpenSSH loads keyPath-cert.pub itself).
func sshTrue(t testing.TB, s *sshdtest.Server, keyPath string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := sshdtest.SSHCommand(t, s, keyPath, "true")
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	return cmd.CombinedOutput()
}

// auditEvent is one NDJSON line of `jit audit list --format json`, with
// the fields the tests check.
type auditEvent struct {
	Seq       int64             `json:"seq"`
	Time      time.Time         `json:"time"`
	Event     string            `json:"event"`
	Code      *string           `json:"code"`
	Actor     string            `json:"actor"`
	User      string            `json:"user"`
	Host      string            `json:"host"`
	Login     string            `json:"login"`
	RequestID string            `json:"request_id"`
	SessionID string            `json:"sid"`
	Serial    string            `json:"serial"`
	Message   string            `json:"message"`
	Data      map[string]string `json:"data"`
	Hash      string            `json:"hash"`
}

// auditList runs `jit audit list --format json` as e and parses every line,
// failing the test on a line that is not one JSON object with an event.
func auditList(t testing.TB, e *engineer, args ...string) []auditEvent {
	t.Helper()
	out := mustRun(t, e, append([]string{"audit", "list", "--format", "json"}, args...)...)
	var evs []auditEvent
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var ev auditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit list line %d is not one event object: %v\n%s", i+1, err, line)
		}
		if ev.Event == "" || ev.Time.IsZero() || ev.Hash == "" || ev.Seq == 0 {
			t.Fatalf("audit list line %d lacks event, time, seq or hash: %s", i+1, line)
		}
		evs = append(evs, ev)
	}
	return evs
}

// findEvent returns the first event of type typ for which match holds.
func findEvent(evs []auditEvent, typ string, match func(auditEvent) bool) (auditEvent, bool) {
	for _, ev := range evs {
		if ev.Event == typ && (match == nil || match(ev)) {
			return ev, true
		}
	}
	return auditEvent{}, false
}

func code(ev auditEvent) string {
	if ev.Code == nil {
		return ""
	}
	return *ev.Code
}

// readCert parses an OpenSSH certificate file.
func readCert(t testing.TB, path string) *ssh.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read certificate: %v", err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatalf("parse certificate %s: %v", path, err)
	}
	c, ok := k.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s holds a %s, not a certificate", path, k.Type())
	}
	return c
}

// grantOutput is what `jit request --format json` prints on success.
type grantOutput struct {
	Request struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"request"`
	CertificateFile string    `json:"certificate_file"`
	KeyFile         string    `json:"key_file"`
	ValidBefore     time.Time `json:"valid_before"`
	Serial          string    `json:"serial"`
	Principals      []string  `json:"principals"`
}

func parseGrant(t testing.TB, stdout string) grantOutput {
	t.Helper()
	var g grantOutput
	if err := json.Unmarshal([]byte(stdout), &g); err != nil {
		t.Fatalf("parse jit request --format json output: %v\n%s", err, stdout)
	}
	if g.CertificateFile == "" || g.Request.ID == "" {
		t.Fatalf("jit request output lacks certificate_file or request id: %s", stdout)
	}
	return g
}

// requestIDIn finds the first request id in jit's output.
var requestIDPattern = regexp.MustCompile(`req_[a-z0-9]+`)

func requestIDIn(t testing.TB, s string) string {
	t.Helper()
	id := requestIDPattern.FindString(s)
	if id == "" {
		t.Fatalf("no request id in %q", s)
	}
	return id
}

// fileMode returns a file's permission bits, failing if it is missing.
func fileMode(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	return fi.Mode().Perm()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

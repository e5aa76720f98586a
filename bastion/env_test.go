package bastion

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/jitssh/jitssh/internal/testkit"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/sessionlog"
)

// testBackend is a Backend over maps that signs target certificates with a
// real target CA key.
type testBackend struct {
	targetCA ssh.Signer
	clock    func() time.Time

	mu       sync.Mutex
	certs    map[uint64]CertStatus
	minted   []TargetCertRequest
	started  []SessionRecord
	ended    []SessionRecord
	rejected []string
	index    map[string][]sessionlog.Line
	// extensions per request id: the grant's permit-* set, which the
	// target certificate carries too (the target's sshd enforces them).
	extensions map[string]map[string]string
	failStart  bool
	// prepared are the PrepareAccount calls; prepareErr, when set, is
	// their answer.
	prepared   []AccountRequest
	prepareErr error
	// mintedAtPrepare is len(minted) at each PrepareAccount call.
	mintedAtPrepare []int
	// revokedHosts are revoked host certificate serials of targets.
	revokedHosts map[uint64]bool
	// revokedTargets are revoked target certificate serials.
	revokedTargets map[uint64]bool
	// statusCalls counts CertificateStatus, TargetCertificateRevoked and
	// HostCertificateRevoked calls; hostStatusFail makes that many
	// HostCertificateRevoked calls fail (a store briefly down).
	statusCalls    int
	hostStatusFail int
	// indexGate, if set, holds every IndexText and IndexPending call until
	// it is closed: a store that indexes slowly.
	indexGate chan struct{}
	// indexFail, if set, makes IndexPending fail from its nth call on
	// (counting from 1), as a jitd stopping in the middle of a catch-up.
	indexFail    int
	indexCalls   int
	indexWaiting int // calls held at the gate now
	// pending is each session's stored catch-up position (IndexPending);
	// caughtUp the sessions whose catch-up finished.
	pending  map[string]int64
	caughtUp map[string]bool
}

func newTestBackend(targetCA ssh.Signer) *testBackend {
	return &testBackend{targetCA: targetCA, clock: time.Now, certs: map[uint64]CertStatus{}, index: map[string][]sessionlog.Line{}, extensions: map[string]map[string]string{}}
}

func (b *testBackend) CertificateStatus(_ context.Context, cert *ssh.Certificate) (CertStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.statusCalls++
	serial := cert.Serial
	st, ok := b.certs[serial]
	if !ok {
		return CertStatus{}, fmt.Errorf("serial %d unknown", serial)
	}
	return st, nil
}

func (b *testBackend) MintTargetCert(_ context.Context, req TargetCertRequest) (*ssh.Certificate, error) {
	serial, err := ca.NewSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	crit := map[string]string{}
	if len(req.SourceAddresses) > 0 {
		crit["source-address"] = strings.Join(req.SourceAddresses, ",")
	}
	b.mu.Lock()
	ext := b.extensions[req.RequestID]
	b.mu.Unlock()
	cert, err := ca.SignUserCert(b.targetCA, ca.UserCertSpec{
		Key: req.Key, Serial: serial, KeyID: "bastion:" + req.SessionID,
		Principals: []string{req.Login + "@" + req.Host},
		ValidAfter: b.clock().Add(-time.Minute), ValidBefore: req.ValidBefore,
		Extensions:      ext,
		CriticalOptions: crit,
	})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.minted = append(b.minted, req)
	b.mu.Unlock()
	return cert, nil
}

func (b *testBackend) PrepareAccount(_ context.Context, req AccountRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prepared = append(b.prepared, req)
	b.mintedAtPrepare = append(b.mintedAtPrepare, len(b.minted))
	return b.prepareErr
}

func (b *testBackend) SessionStarted(_ context.Context, s SessionRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failStart {
		return errors.New("audit store down")
	}
	b.started = append(b.started, s)
	return nil
}

func (b *testBackend) SessionEnded(_ context.Context, s SessionRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = append(b.ended, s)
	return nil
}

func (b *testBackend) TargetCertificateRevoked(_ context.Context, serial uint64) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.statusCalls++
	return b.revokedTargets[serial], nil
}

func (b *testBackend) HostCertificateRevoked(_ context.Context, serial uint64) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.statusCalls++
	if b.hostStatusFail > 0 {
		b.hostStatusFail--
		return false, errors.New("audit store down")
	}
	return b.revokedHosts[serial], nil
}

func (b *testBackend) SessionRejected(_ context.Context, code, user, target, clientAddr, reason string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rejected = append(b.rejected, fmt.Sprintf("code=%s user=%s target=%s client=%s reason=%s", code, user, target, clientAddr, reason))
	return nil
}

func (b *testBackend) IndexText(_ context.Context, id string, lines []sessionlog.Line) error {
	b.wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index[id] = append(b.index[id], lines...)
	return nil
}

// wait holds the caller at indexGate, if there is one.
func (b *testBackend) wait() {
	b.mu.Lock()
	gate := b.indexGate
	b.indexWaiting++
	b.mu.Unlock()
	if gate != nil {
		<-gate
	}
	b.mu.Lock()
	b.indexWaiting--
	b.mu.Unlock()
}

func (b *testBackend) IndexPending(_ context.Context, id string, lines []sessionlog.Line, next int64, done bool) error {
	b.wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.indexCalls++
	if b.indexFail > 0 && b.indexCalls >= b.indexFail {
		return errors.New("audit store closed")
	}
	b.index[id] = append(b.index[id], lines...)
	if b.pending == nil {
		b.pending, b.caughtUp = map[string]int64{}, map[string]bool{}
	}
	if done {
		delete(b.pending, id)
		b.caughtUp[id] = true
	} else {
		b.pending[id] = next
	}
	return nil
}

func (b *testBackend) snapshot() (started, ended []SessionRecord, rejected []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]SessionRecord(nil), b.started...), append([]SessionRecord(nil), b.ended...), append([]string(nil), b.rejected...)
}

// waitEnded waits (at most 10 s) until n sessions have ended.
func (b *testBackend) waitEnded(t *testing.T, n int) []SessionRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, ended, _ := b.snapshot()
		if len(ended) >= n {
			return ended
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, ended, rej := b.snapshot()
	t.Fatalf("want %d ended sessions, have %d (rejected: %q)", n, len(ended), rej)
	return nil
}

// env is one bastion in front of one real sshd target.
type env struct {
	dir        string
	userCA     ssh.Signer
	hostCA     ssh.Signer
	targetCA   ssh.Signer
	target     *sshdtest.Server
	login      string
	backend    *testBackend
	srv        *Server
	port       int
	knownHosts string
	recDir     string
	targets    map[string]Target
}

// envOptions tweak the bastion config before New.
type envOptions struct {
	recordingDir  string
	expiryWarning time.Duration
	extraTargets  map[string]Target
	failOpen      bool
	revokeEvery   time.Duration
}

func newEnv(t *testing.T, opt envOptions) *env {
	t.Helper()
	sshdtest.Require(t, "sshd", "ssh")
	e := &env{dir: t.TempDir(), userCA: testkit.Signer(t), hostCA: testkit.Signer(t), targetCA: testkit.Signer(t)}
	e.login = sshdtest.LocalUser(t)
	e.target = sshdtest.Start(t, sshdtest.Config{
		TrustedUserCAKeys: []ssh.PublicKey{e.targetCA.PublicKey()},
		Principals:        []string{e.login + "@db1", e.login + "@db2"},
		HostCA:            e.hostCA,
		HostName:          "db1",
	})
	e.backend = newTestBackend(e.targetCA)
	e.recDir = filepath.Join(e.dir, "recordings")
	if opt.recordingDir != "" {
		e.recDir = opt.recordingDir
	}
	e.targets = map[string]Target{
		"db1": {Name: "db1", Address: e.target.Addr},
		"db2": {Name: "db2", Address: e.target.Addr},
	}
	for k, v := range opt.extraTargets {
		e.targets[k] = v
	}
	serial, err := ca.NewSerial(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner := hostCertSigner(t, e.hostCA, serial, "127.0.0.1", "bastion")
	srv, err := New(Config{
		HostSigner:         hostSigner,
		UserCAs:            []ssh.PublicKey{e.userCA.PublicKey()},
		HostCA:             e.hostCA.PublicKey(),
		Resolve:            func(h string) (Target, bool) { tg, ok := e.targets[h]; return tg, ok },
		Backend:            e.backend,
		RecordingDir:       e.recDir,
		ExpiryWarning:      opt.expiryWarning,
		RevocationInterval: opt.revokeEvery,
		RecordingFailOpen:  opt.failOpen,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.port = l.Addr().(*net.TCPAddr).Port
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		<-served
	})
	e.knownHosts = filepath.Join(e.dir, "known_hosts")
	kh := "@cert-authority * " + string(ssh.MarshalAuthorizedKey(e.hostCA.PublicKey()))
	if err := os.WriteFile(e.knownHosts, []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// certSpec describes an engineer certificate for userCert.
type certSpec struct {
	name        string // key file name
	principal   string
	validFor    time.Duration
	validAfter  time.Time // zero: now - 1m
	extensions  map[string]string
	signer      ssh.Signer // nil: e.userCA
	register    bool       // known to the Backend
	revoked     bool
	recordInput bool
}

// userCert writes a key and certificate for spec and returns the key path,
// the signer and the certificate.
func (e *env) userCert(t *testing.T, spec certSpec) (string, ssh.Signer, *ssh.Certificate) {
	t.Helper()
	keyPath, key := sshdtest.NewUserKey(t, e.dir, spec.name)
	serial, err := ca.NewSerial(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	after := spec.validAfter
	if after.IsZero() {
		after = time.Now().Add(-time.Minute)
	}
	ext := spec.extensions
	if ext == nil {
		ext = map[string]string{"permit-pty": ""}
	}
	signer := spec.signer
	if signer == nil {
		signer = e.userCA
	}
	cert, err := ca.SignUserCert(signer, ca.UserCertSpec{
		Key: key.PublicKey(), Serial: serial, KeyID: "alice",
		Principals: []string{spec.principal},
		ValidAfter: after, ValidBefore: time.Now().Add(spec.validFor),
		Extensions: ext,
	})
	if err != nil {
		t.Fatalf("sign user cert: %v", err)
	}
	sshdtest.WriteCert(t, keyPath, cert)
	if spec.register {
		e.backend.mu.Lock()
		reqID := "req-" + strconv.FormatUint(serial, 10)
		e.backend.certs[serial] = CertStatus{RequestID: reqID, User: "alice", Revoked: spec.revoked, RecordInput: spec.recordInput}
		e.backend.extensions[reqID] = ext
		e.backend.mu.Unlock()
	}
	return keyPath, key, cert
}

// sshArgs are the stock client options for the bastion.
func (e *env) sshArgs(keyPath string) []string {
	return []string{
		"-F", "none",
		"-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + e.knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "KexAlgorithms=curve25519-sha256",
		"-o", "IdentitiesOnly=yes",
		"-o", "PreferredAuthentications=publickey",
		"-o", "ConnectTimeout=10",
		"-i", keyPath,
	}
}

// ssh returns the stock ssh command that logs in to the bastion as user.
func (e *env) ssh(keyPath, user string, args ...string) *exec.Cmd {
	a := append(e.sshArgs(keyPath), "-p", strconv.Itoa(e.port), "-l", user, "127.0.0.1")
	return exec.Command(sshdtest.Path("ssh"), append(a, args...)...)
}

// run runs cmd with stdin and returns stdout, stderr and the exit code.
func run(t *testing.T, cmd *exec.Cmd, stdin string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := runTimeout(cmd, 30*time.Second)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %v: %v", cmd.Args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// runTimeout runs cmd and kills it after d.
func runTimeout(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%v: timed out after %s", cmd.Args, d)
	}
}

// readRecording reads a finished recording and checks its digest against
// the session record.
func readRecording(t *testing.T, rec SessionRecord) *sessionlog.Recording {
	t.Helper()
	data, err := os.ReadFile(rec.RecordingPath)
	if err != nil {
		t.Fatalf("read recording: %v", err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != rec.RecordingSHA256 {
		t.Errorf("recording SHA-256 %s, session record says %s", got, rec.RecordingSHA256)
	}
	if int64(len(data)) != rec.RecordingSize {
		t.Errorf("recording size %d, session record says %d", len(data), rec.RecordingSize)
	}
	r, err := sessionlog.ReadAll(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse recording: %v", err)
	}
	return r
}

// eventText joins the data of every event with code.
func eventText(r *sessionlog.Recording, code string) string {
	var b strings.Builder
	for _, ev := range r.Events {
		if ev.Code == code {
			b.WriteString(ev.Data)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// hostCertSigner returns a fresh host key presenting a certificate of
// hostCA for principals, valid for an hour.
func hostCertSigner(t *testing.T, hostCA ssh.Signer, serial uint64, principals ...string) ssh.Signer {
	t.Helper()
	key := testkit.Signer(t)
	now := time.Now()
	cert, err := ca.SignHostCert(hostCA, ca.HostCertSpec{Key: key.PublicKey(), Serial: serial, KeyID: "host:bastion",
		Principals: principals, ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(time.Hour)})
	if err != nil {
		t.Fatalf("certify bastion host key: %v", err)
	}
	s, err := ca.HostCertSigner(key, cert)
	if err != nil {
		t.Fatalf("bastion host certificate signer: %v", err)
	}
	return s
}

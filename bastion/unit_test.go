package bastion

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/policy"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/sessionlog"
)

func TestParseTargetUser(t *testing.T) {
	tests := []struct {
		name      string
		user      string
		wantLogin string
		wantHost  string
		wantErr   string
	}{
		{name: "at form", user: "deploy@db1", wantLogin: "deploy", wantHost: "db1"},
		{name: "colon form", user: "deploy:db1", wantLogin: "deploy", wantHost: "db1"},
		{name: "no separator", user: "deploy", wantErr: "want LOGIN@HOST"},
		{name: "empty login", user: "@db1", wantErr: "empty login or host"},
		{name: "empty host", user: "deploy:", wantErr: "empty login or host"},
		{name: "two separators", user: "deploy@db1@x", wantErr: "invalid character"},
		{name: "mixed separators", user: "deploy:db1@x", wantErr: "invalid character"},
		{name: "wildcard host", user: "deploy@db*", wantErr: "invalid character"},
		{name: "comma", user: "deploy@db1,db2", wantErr: "invalid character"},
		{name: "space", user: "deploy@db 1", wantErr: "invalid character"},
		{name: "control byte", user: "deploy@db\x001", wantErr: "invalid character"},
		{name: "C1 control", user: "deploy@db\u009b2J", wantErr: "invalid character"},
		{name: "bidi override", user: "deploy@\u202e1bd", wantErr: "invalid character"},
		{name: "no-break space", user: "deploy@db\u00a01", wantErr: "invalid character"},
		{name: "invalid UTF-8", user: "deploy@db\xff", wantErr: "not valid UTF-8"},
		{name: "unicode login", user: "dépl\u00f6y@db1", wantLogin: "dépl\u00f6y", wantHost: "db1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			login, host, err := ParseTargetUser(tc.user)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseTargetUser(%q) error %v, want %q", tc.user, err, tc.wantErr)
				}
				return
			}
			if err != nil || login != tc.wantLogin || host != tc.wantHost {
				t.Fatalf("ParseTargetUser(%q) = %q, %q, %v", tc.user, login, host, err)
			}
		})
	}
}

func FuzzParseTargetUser(f *testing.F) {
	for _, s := range []string{"deploy@db1", "deploy:db1", "@", "a@b@c", "a:b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		login, host, err := ParseTargetUser(user)
		if i := strings.IndexAny(user, "@:"); i >= 0 && policy.ValidName("login", user[:i]) == nil && policy.ValidName("host", user[i+1:]) == nil {
			if err != nil || login != user[:i] || host != user[i+1:] {
				t.Fatalf("ParseTargetUser(%q) = %q, %q, %v; policy accepts login %q and host %q", user, login, host, err, user[:i], user[i+1:])
			}
		}
		if err != nil {
			return
		}
		if login == "" || host == "" || strings.ContainsAny(login+host, "@:,*? \t\n") || !utf8.ValidString(user) ||
			strings.ContainsFunc(user, func(r rune) bool { return unicode.IsControl(r) || !unicode.IsPrint(r) }) {
			t.Fatalf("ParseTargetUser(%q) accepted login %q host %q", user, login, host)
		}
		if user != login+"@"+host && user != login+":"+host {
			t.Fatalf("ParseTargetUser(%q) = %q, %q does not round-trip", user, login, host)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	hostCA, userCA := testkit.Signer(t), testkit.Signer(t)
	hostSigner := hostCertSigner(t, hostCA, 1, "bastion")
	valid := Config{
		HostSigner: hostSigner, UserCAs: []ssh.PublicKey{userCA.PublicKey()}, HostCA: hostCA.PublicKey(),
		Resolve:      func(string) (Target, bool) { return Target{}, false },
		Backend:      newTestBackend(testkit.Signer(t)),
		RecordingDir: t.TempDir(),
	}
	userCertSigner := func() ssh.Signer {
		k := testkit.Signer(t)
		c, err := ca.SignUserCert(userCA, ca.UserCertSpec{Key: k.PublicKey(), Serial: 7, KeyID: "x", Principals: []string{"a@b"},
			ValidAfter: time.Now().Add(-time.Minute), ValidBefore: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := ssh.NewCertSigner(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "no host signer", mutate: func(c *Config) { c.HostSigner = nil }, wantErr: "HostSigner is required"},
		{name: "plain host key", mutate: func(c *Config) { c.HostSigner = testkit.Signer(t) }, wantErr: "must hold a host certificate"},
		{name: "user cert as host key", mutate: func(c *Config) { c.HostSigner = userCertSigner }, wantErr: "want host certificate"},
		{name: "no user CAs", mutate: func(c *Config) { c.UserCAs = nil }, wantErr: "UserCAs is required"},
		{name: "nil user CA", mutate: func(c *Config) { c.UserCAs = []ssh.PublicKey{nil} }, wantErr: "UserCAs[0] is nil"},
		{name: "no resolver", mutate: func(c *Config) { c.Resolve = nil }, wantErr: "Resolve is required"},
		{name: "no backend", mutate: func(c *Config) { c.Backend = nil }, wantErr: "Backend is required"},
		{name: "no recording dir", mutate: func(c *Config) { c.RecordingDir = "" }, wantErr: "RecordingDir is required"},
		{name: "negative warning", mutate: func(c *Config) { c.ExpiryWarning = -time.Second }, wantErr: "negative"},
		{name: "bad egress", mutate: func(c *Config) { c.EgressAddresses = []string{"10.0.0.1"} }, wantErr: `"10.0.0.1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(c); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate error %v, want %q", err, tc.wantErr)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

// TestAuthorize covers checks the wire tests cannot reach: x/crypto refuses
// to parse chained certificates before our callback, and source-address
// needs a remote address the test cannot choose.
func TestAuthorize(t *testing.T) {
	userCA := testkit.Signer(t)
	b := newTestBackend(testkit.Signer(t))
	b.certs[11] = CertStatus{User: "alice", RequestID: "r1"}
	hostCA := testkit.Signer(t)
	hostSigner := hostCertSigner(t, hostCA, 1, "bastion")
	now := time.Now()
	s, err := New(Config{
		HostSigner: hostSigner, UserCAs: []ssh.PublicKey{userCA.PublicKey()}, HostCA: hostCA.PublicKey(),
		Resolve:      func(h string) (Target, bool) { return Target{Name: h, Address: "127.0.0.1:22"}, h == "db1" },
		Backend:      b,
		RecordingDir: t.TempDir(),
		Clock:        func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(crit map[string]string, ext map[string]string) *ssh.Certificate {
		c, err := ca.SignUserCert(userCA, ca.UserCertSpec{Key: testkit.Signer(t).PublicKey(), Serial: 11, KeyID: "alice",
			Principals: []string{"deploy@db1"}, ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(10 * time.Minute),
			CriticalOptions: crit, Extensions: ext})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	plain := sign(nil, map[string]string{"permit-pty": ""})
	mid := testkit.Signer(t)
	midCert := resign(t, &ssh.Certificate{Key: mid.PublicKey(), Serial: 12, CertType: ssh.UserCert,
		ValidPrincipals: []string{"deploy@db1"}, ValidAfter: plain.ValidAfter, ValidBefore: plain.ValidBefore}, ssh.UserCert, userCA)
	midSigner, err := ssh.NewCertSigner(midCert, mid)
	if err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	tests := []struct {
		name    string
		user    string
		key     ssh.PublicKey
		remote  net.Addr
		wantErr string
	}{
		{name: "accepted", user: "deploy@db1", key: plain, remote: local},
		{name: "chained", user: "deploy@db1", key: signChained(t, plain, midSigner), remote: local, wantErr: "signed by a certificate"},
		{name: "source address outside", user: "deploy@db1", key: sign(map[string]string{"source-address": "10.0.0.0/8"}, nil), remote: local, wantErr: "source-address"},
		{name: "source address inside", user: "deploy@db1", key: sign(map[string]string{"source-address": "127.0.0.0/8"}, nil), remote: local},
		{name: "other host", user: "deploy@db9", key: sign(nil, nil), remote: local, wantErr: "principal"},
		{name: "plain key", user: "deploy@db1", key: testkit.Signer(t).PublicKey(), remote: local, wantErr: "not a certificate"},
		{name: "bad user", user: "deploy", key: plain, remote: local, wantErr: "LOGIN@HOST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, crit, err := s.authorize(context.Background(), tc.user, tc.key, tc.remote)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("authorize error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("authorize: %v", err)
			}
			// The facts survive the trip through Permissions, and the
			// critical options stay for x/crypto's source-address check.
			perms := id.permissions(crit)
			got, err := identityOf(perms)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.key.(*ssh.Certificate).CriticalOptions; !maps.Equal(perms.CriticalOptions, want) {
				t.Fatalf("critical options %v, want %v", perms.CriticalOptions, want)
			}
			if got.User != "alice" || got.Login != "deploy" || got.Host != "db1" || got.Serial != 11 || got.RequestID != "r1" ||
				!got.ValidBefore.Equal(time.Unix(int64(plain.ValidBefore), 0)) {
				t.Fatalf("identity %+v", got)
			}
			if _, ok := tc.key.(*ssh.Certificate).Extensions["permit-pty"]; ok != got.permits(permitPTY) {
				t.Fatalf("permit-pty lost: %+v", got.Extensions)
			}
		})
	}
}

func TestSCPParser(t *testing.T) {
	stream := "T1700000000 0 1700000000 0\nC0644 5 a.txt\nhello\x00D0755 0 dir\nC0600 3 b c.bin\nxyz\x00E\n\x01no such file\n"
	want := []string{"scp file a.txt (5 bytes, mode 0644)", "scp dir dir (mode 0755)", "scp file b c.bin (3 bytes, mode 0600)", "scp error: no such file"}
	tests := []struct {
		name  string
		chunk int
	}{
		{name: "whole", chunk: len(stream)},
		{name: "byte by byte", chunk: 1},
		{name: "chunks of 4", chunk: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p scpParser
			var got []string
			for i := 0; i < len(stream); i += tc.chunk {
				got = append(got, p.feed([]byte(stream[i:min(i+tc.chunk, len(stream))]))...)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %q\nwant %q", got, want)
			}
		})
	}
}

func FuzzSCPParser(f *testing.F) {
	f.Add([]byte("C0644 5 a.txt\nhello\x00E\n"), 3)
	f.Add([]byte("D0755 0 d\nC0644 99999999999999999999 x\n"), 1)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		chunk = max(1, chunk%64+1)
		var p scpParser
		for i := 0; i < len(b); i += chunk {
			for _, ev := range p.feed(b[i:min(i+chunk, len(b))]) {
				if !strings.HasPrefix(ev, "scp ") {
					t.Fatalf("event %q", ev)
				}
			}
		}
		if len(p.line) > scpMaxLine+64 {
			t.Fatalf("line buffer grew to %d", len(p.line))
		}
	})
}

func TestRecordingPath(t *testing.T) {
	at := time.Date(2026, 3, 4, 23, 30, 0, 0, time.FixedZone("x", -3*3600)) // 2026-03-05 UTC
	if got, want := recordingPath("/rec", at, "abc"), "/rec/2026/03/05/abc.cast.zst"; got != want {
		t.Fatalf("recordingPath = %q, want %q", got, want)
	}
}

// TestExpiryClockDecides: a timer that fires while the Clock says it is
// early re-arms instead of acting.
func TestExpiryClockDecides(t *testing.T) {
	const lag = 300 * time.Millisecond
	s := &Server{cfg: Config{Clock: func() time.Time { return time.Now().Add(-lag) }}}
	st := &connState{srv: s}
	at := time.Now().Add(50 * time.Millisecond) // real time; the Clock reaches it lag later
	fired := make(chan time.Time, 1)
	st.mu.Lock()
	timer := st.schedule(at, func() { fired <- time.Now() })
	st.mu.Unlock()
	defer timer.Stop()
	select {
	case when := <-fired:
		if early := at.Add(lag).Sub(when); early > 20*time.Millisecond {
			t.Fatalf("fired %s before the Clock reached the deadline", early)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("never fired")
	}
}

// failAfter accepts the header, then fails every write like a full disk.
type failAfter struct {
	mu sync.Mutex
	n  int
}

func (f *failAfter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > 0 {
		f.n--
		return len(p), nil
	}
	return 0, errors.New("no space left on device")
}

// fakeChannel is the client side of a session channel, capturing stderr.
type fakeChannel struct {
	mu     sync.Mutex
	stderr bytes.Buffer
	closed bool
}

func (c *fakeChannel) Read([]byte) (int, error)    { return 0, io.EOF }
func (c *fakeChannel) Write(p []byte) (int, error) { return len(p), nil }
func (c *fakeChannel) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
func (c *fakeChannel) CloseWrite() error { return nil }
func (c *fakeChannel) SendRequest(string, bool, []byte) (bool, error) {
	return false, nil
}
func (c *fakeChannel) Stderr() io.ReadWriter { return fakeStderr{c} }

type fakeStderr struct{ c *fakeChannel }

func (s fakeStderr) Read([]byte) (int, error) { return 0, io.EOF }
func (s fakeStderr) Write(p []byte) (int, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.c.stderr.Write(p)
}

// TestRecordingFailsMidSession: a write error ends the session (record or
// refuse) unless RecordingFailOpen.
func TestRecordingFailsMidSession(t *testing.T) {
	tests := []struct {
		name      string
		failOpen  bool
		wantEnded bool
	}{
		{name: "record or refuse", wantEnded: true},
		{name: "fail open", failOpen: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{cfg: Config{Clock: time.Now, RecordingFailOpen: tc.failOpen}, log: slog.New(slog.DiscardHandler)}
			ch := &fakeChannel{}
			ss := newSession(s, &connState{srv: s}, identity{}, ch, nil)
			w, err := sessionlog.NewWriter(&failAfter{n: 1}, sessionlog.Header{Version: 2, Width: 80, Height: 24}, ss.tape.writerOptions(nil))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ss.tape.attach("s1", w, nil)
			ss.tape.record(sessionlog.CodeOutput, bytes.Repeat([]byte("x"), 200<<10))
			deadline := time.Now().Add(2 * time.Second)
			for {
				ch.mu.Lock()
				closed, msg := ch.closed, ch.stderr.String()
				ch.mu.Unlock()
				if closed || time.Now().After(deadline) {
					if closed != tc.wantEnded {
						t.Fatalf("session ended = %t, want %t", closed, tc.wantEnded)
					}
					if closed && !strings.Contains(msg, "recording unavailable: ") {
						t.Fatalf("client told %q", msg)
					}
					if rec := ss.snapshot(); closed && !strings.HasPrefix(rec.EndReason, "recording failed: ") {
						t.Fatalf("end reason %q", rec.EndReason)
					}
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestIndexerFallsBehind: past indexMaxPending the indexer takes no more
// lines, and stores the position its index ends at with the lines it has,
// instead of dropping the rest or growing the bastion's memory.
func TestIndexerFallsBehind(t *testing.T) {
	tests := []struct {
		name        string
		lines       int
		wantIndexed int
		wantPending int64 // -1: none
	}{
		{name: "within the bound", lines: 1000, wantIndexed: 1000, wantPending: -1},
		{name: "past the bound", lines: indexMaxPending + 5, wantIndexed: indexMaxPending, wantPending: indexMaxPending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			backend := &testBackend{index: map[string][]sessionlog.Line{}}
			s := &Server{cfg: Config{Backend: backend}, log: slog.New(slog.DiscardHandler)}
			// No loop: the test flushes by hand, as if the store were
			// busy until then.
			ix := &indexer{srv: s, id: "s1", kick: make(chan struct{}, 1)}
			for i := 0; i < tc.lines; i++ {
				ix.add(sessionlog.Line{Kind: sessionlog.CodeOutput, Text: "line"})
			}
			ix.flushOnce()
			if n := len(backend.index["s1"]); n != tc.wantIndexed {
				t.Errorf("indexed %d lines, want %d", n, tc.wantIndexed)
			}
			got, ok := backend.pending["s1"]
			if !ok {
				got = -1
			}
			if got != tc.wantPending {
				t.Errorf("stored catch-up position %d, want %d", got, tc.wantPending)
			}
			if behind := ix.isBehind(); behind != (tc.wantPending >= 0) {
				t.Errorf("behind = %v", behind)
			}
		})
	}
}

// TestIdentityOf: only the typed identity that permissions() attaches counts;
// string extensions that merely look like facts, or nothing, do not.
func TestIdentityOf(t *testing.T) {
	id := identity{User: "alice", Login: "deploy", Host: "db1", Serial: 7, Extensions: map[string]string{permitPTY: ""}}
	tests := []struct {
		name    string
		perms   *ssh.Permissions
		wantErr bool
	}{
		{name: "attached by permissions", perms: id.permissions(nil)},
		{name: "nil", perms: nil, wantErr: true},
		{name: "empty", perms: &ssh.Permissions{}, wantErr: true},
		{name: "string extensions only", perms: &ssh.Permissions{Extensions: map[string]string{"jitssh-user": "alice", "jitssh-login": "deploy"}}, wantErr: true},
		{name: "other value under the key", perms: &ssh.Permissions{ExtraData: map[any]any{identityKey{}: "alice"}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := identityOf(tc.perms)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("identityOf = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.User != id.User || got.Serial != id.Serial || !got.permits(permitPTY) {
				t.Fatalf("identity %+v, want %+v", got, id)
			}
		})
	}
}

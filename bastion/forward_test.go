package bastion

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/sessionlog"
)

func TestForwardingRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	tests := []struct {
		name       string
		args       []string
		wantStderr string
		wantAudit  string
	}{
		{
			// -W opens a direct-tcpip channel, exactly what -L does per
			// accepted connection.
			name:       "local (direct-tcpip)",
			args:       []string{"-W", e.target.Addr},
			wantStderr: "administratively prohibited",
			wantAudit:  "forwarding refused: direct-tcpip to " + e.target.Addr,
		},
		{
			name:       "remote (tcpip-forward)",
			args:       []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9", "true"},
			wantStderr: "remote port forwarding failed",
			wantAudit:  "forwarding refused: tcpip-forward",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, e.ssh(key, e.login+"@db1", tc.args...), "")
			if code == 0 || !strings.Contains(stderr, tc.wantStderr) {
				t.Fatalf("exit %d, stderr %q; want refusal with %q", code, stderr, tc.wantStderr)
			}
			_, _, rejected := e.backend.snapshot()
			if !containsAny(rejected, tc.wantAudit) {
				t.Errorf("refusal not audited: %q", rejected)
			}
		})
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestPermittedLocalForwarding(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true,
		extensions: map[string]string{"permit-pty": "", "permit-port-forwarding": ""}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lport := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := e.ssh(key, e.login+"@db1", "-tt", "-o", "ExitOnForwardFailure=yes",
		"-L", strconv.Itoa(lport)+":"+e.target.Addr, "echo fwd-$((6*7)); sleep 30")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	testkit.WaitFor(t, 10*time.Second, "the session's output", func() bool { return e.indexed("fwd-42") })
	// Through the forward we reach the target's sshd, from the target.
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(lport), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	banner := make([]byte, 8)
	if _, err := io.ReadFull(c, banner); err != nil || string(banner) != "SSH-2.0-" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	rec := e.backend.waitEnded(t, 1)[0]
	if m := eventText(readRecording(t, rec), sessionlog.CodeMarker); !strings.Contains(m, "forwarding: direct-tcpip to "+e.target.Addr) {
		t.Errorf("forwarding not marked: %q", m)
	}
}

package e2e

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestStatusAsksTheDaemon revokes alice's certificate during a session:
// jit status then shows the grant revoked with the reason and the session
// the bastion cut, jit ssh tells why the bastion refuses the certificate
// (keeping ssh's exit code), and with the daemon unreachable jit status
// says so and shows the local files, marked as such.
func TestStatusAsksTheDaemon(t *testing.T) {
	t.Parallel()
	w := newSecWorld(t)
	alice, login := w.alice, w.login
	live := start(t, alice, "ssh", login+"@db1", "--reason", "check the disk space", "--", "echo started; sleep 30")
	testkit.WaitFor(t, sessionWait, "alice's live session", func() bool { return len(secSessions(t, w.auditor, "--live")) == 1 })
	serial := strconv.FormatUint(readCert(t, filepath.Join(alice.Home, "state", "keys", login+"@db1-cert.pub")).Serial, 10)

	if out := mustRun(t, alice, "status"); !strings.Contains(out, "[live]") || !strings.Contains(out, serial) {
		t.Errorf("jit status before revocation:\n%s\nwant serial %s live", out, serial)
	}
	mustRun(t, w.admin, "admin", "revoke", serial, "--reason", "laptop stolen")
	if r := live.wait(t, commandTimeout); r.Code == 0 {
		t.Errorf("the session went on after revocation: %v", r)
	}
	testkit.WaitFor(t, sessionWait, "the cut session to end", func() bool { return len(secSessions(t, w.auditor, "--live")) == 0 })

	out := mustRun(t, alice, "status")
	for _, want := range []string{serial, "REVOKED: laptop stolen", "cut at", "certificate revoked"} {
		if !strings.Contains(out, want) {
			t.Errorf("jit status after revocation lacks %q:\n%s", want, out)
		}
	}
	var st struct {
		State        string            `json:"state"`
		RevokeReason string            `json:"revoke_reason"`
		Cut          []json.RawMessage `json:"cut_sessions"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, alice, "status", "--format", "json")), &st); err != nil ||
		st.State != "revoked" || st.RevokeReason != "laptop stolen" || len(st.Cut) != 1 {
		t.Errorf("jit status --format json: %+v (%v); want state revoked, the reason and one cut session", st, err)
	}

	r := start(t, alice, "ssh", login+"@db1", "--", "echo after-revoke").wait(t, commandTimeout)
	if r.Code != 255 || !strings.Contains(r.Stderr, "the bastion refused the certificate: certificate serial "+serial+" was revoked") ||
		!strings.Contains(r.Stderr, "laptop stolen") {
		t.Errorf("jit ssh with a revoked certificate: %v; want ssh's exit 255 and the reason", r)
	}

	offline := *alice
	offline.ExtraEnv = []string{"JIT_ADDR=https://127.0.0.1:1"}
	r = start(t, &offline, "status").wait(t, commandTimeout)
	if r.Code != 0 || !strings.Contains(r.Stderr, "could not be asked") || !strings.Contains(r.Stdout, "[local files only]") {
		t.Errorf("jit status with the daemon unreachable: %v; want exit 0, a warning and the local view marked", r)
	}
}

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

const hostCertPolicy = `
users:
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
auditors: {groups: [secops]}
hosts:
  db1: {address: "127.0.0.1:22"}
roles: []
`

// TestHostCertifyIsAudited runs `jitd host certify` beside a serving jitd:
// it prints and writes the certificate as before, and the audit trail has
// its host_cert.issued event with code target, naming the host, the
// principals and the key.
func TestHostCertifyIsAudited(t *testing.T) {
	t.Parallel()
	auditor := newEngineer(t, "auditor")
	d := startDaemon(t, renderPolicy(t, hostCertPolicy, "deploy", []*engineer{auditor}, nil))
	d.login(t, auditor)

	keyPath := filepath.Join(t.TempDir(), "ssh_host_ed25519_key.pub")
	key := testkit.PublicKeyFile(t, keyPath)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin(t, "jitd"), "host", "certify", "--data", d.Data,
		"--principal", "db1", "--principal", "127.0.0.1", "--valid", "48h", keyPath).CombinedOutput()
	if err != nil {
		t.Fatalf("jitd host certify: %v\n%s", err, out)
	}
	certPath := strings.TrimSuffix(keyPath, ".pub") + "-cert.pub"
	if want := fmt.Sprintf("wrote %s (principals db1,127.0.0.1); add to sshd_config: HostCertificate %s\n", certPath, certPath); string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
	cert := readCert(t, certPath)
	if cert.CertType != ssh.HostCert || cert.ValidBefore-cert.ValidAfter != 48*3600+60 {
		t.Errorf("certificate type %d valid %d..%d, want a host certificate for 48h (backdated a minute)", cert.CertType, cert.ValidAfter, cert.ValidBefore)
	}

	evs := auditList(t, auditor, "--event", "host_cert.issued")
	ev, ok := findEvent(evs, "host_cert.issued", func(ev auditEvent) bool { return code(ev) == "target" })
	if !ok {
		t.Fatalf("no host_cert.issued event with code target in %+v", evs)
	}
	if ev.Serial != fmt.Sprint(cert.Serial) || ev.Host != "db1" || ev.Actor == "" ||
		ev.Data["principals"] != "db1,127.0.0.1" || ev.Data["key_fingerprint"] != ssh.FingerprintSHA256(key) || ev.Data["valid_before"] == "" {
		t.Errorf("event %+v, want serial %d for db1 with principals, fingerprint and validity", ev, cert.Serial)
	}
}

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/ca"
)

// TestBastionRefusesForgedCertificates: with the user CA's key leaked, an
// attacker signs certificates that reuse the serial of one the CA issued but
// differ from it in one field each. Stock ssh through the bastion is refused
// for every one, each refusal audited as session.rejected with code
// certificate_mismatch naming the field; the genuine certificate works.
func TestBastionRefusesForgedCertificates(t *testing.T) {
	t.Parallel()
	w := newSecWorld(t)
	login := w.login
	g := parseGrant(t, mustRun(t, w.alice, "request", "db1", "--login", login, "--reason", "look at the disks", "--format", "json"))
	genuine := readCert(t, g.CertificateFile)
	leaked, err := ca.LoadSigner(filepath.Join(w.d.Data, "ca", "user_ca"))
	if err != nil {
		t.Fatalf("load the user CA key: %v", err)
	}
	dir := t.TempDir()
	knownHosts := bastionKnownHosts(t, w.d, dir)
	attackerKey := writeNewKey(t, filepath.Join(dir, "attacker"))

	tests := []struct {
		name, field, host string
		keyFile           string // default: the grant's key
		edit              func(c *ssh.Certificate)
	}{
		{name: "principal of another host", field: "principals", host: "db2", edit: func(c *ssh.Certificate) {
			c.ValidPrincipals = []string{login + "@db2"}
		}},
		{name: "extra principal", field: "principals", edit: func(c *ssh.Certificate) {
			c.ValidPrincipals = append(c.ValidPrincipals, login+"@db2")
		}},
		{name: "another key", field: "key", keyFile: attackerKey.file, edit: func(c *ssh.Certificate) { c.Key = attackerKey.pub }},
		{name: "longer validity", field: "valid_before", edit: func(c *ssh.Certificate) { c.ValidBefore += 3600 }},
		{name: "earlier validity", field: "valid_after", edit: func(c *ssh.Certificate) { c.ValidAfter -= 3600 }},
		{name: "another key id", field: "key_id", edit: func(c *ssh.Certificate) { c.KeyId = "jit:other:" + c.KeyId }},
		{name: "added permit-port-forwarding", field: "extensions", edit: func(c *ssh.Certificate) {
			c.Extensions["permit-port-forwarding"] = ""
		}},
		{name: "dropped permit-pty", field: "extensions", edit: func(c *ssh.Certificate) { delete(c.Extensions, "permit-pty") }},
		{name: "added critical option", field: "critical_options", edit: func(c *ssh.Certificate) {
			c.CriticalOptions["source-address"] = "127.0.0.0/8"
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forged := *genuine
			forged.ValidPrincipals = append([]string(nil), genuine.ValidPrincipals...)
			forged.Permissions = ssh.Permissions{CriticalOptions: maps.Clone(genuine.CriticalOptions), Extensions: maps.Clone(genuine.Extensions)}
			if forged.CriticalOptions == nil {
				forged.CriticalOptions = map[string]string{}
			}
			if forged.Extensions == nil {
				forged.Extensions = map[string]string{}
			}
			tt.edit(&forged)
			if err := forged.SignCert(rand.Reader, leaked); err != nil {
				t.Fatalf("forge: %v", err)
			}
			certFile := filepath.Join(dir, "forged"+string(rune('a'+i))+"-cert.pub")
			secWrite(t, certFile, ssh.MarshalAuthorizedKey(&forged))
			keyFile, host := g.KeyFile, "db1"
			if tt.keyFile != "" {
				keyFile = tt.keyFile
			}
			if tt.host != "" {
				host = tt.host
			}
			out, err := bastionSSH(t, w.d, knownHosts, keyFile, certFile, login+"@"+host, "echo forged-in")
			if err == nil || strings.Contains(out, "forged-in") || !strings.Contains(out, "Permission denied") {
				t.Fatalf("ssh with a forged certificate (%s): err %v, output %q; want Permission denied", tt.name, err, out)
			}
			var found bool
			for _, ev := range secEvents(t, w.auditor, "--event", "session.rejected") {
				if ev.Code == "certificate_mismatch" && strings.Contains(ev.Message, tt.field+" is ") &&
					strings.Contains(ev.Message, fmt.Sprint(genuine.Serial)) {
					found = true
				}
			}
			if !found {
				t.Errorf("no session.rejected with code certificate_mismatch naming %s for serial %d", tt.field, genuine.Serial)
			}
		})
	}

	t.Run("genuine certificate", func(t *testing.T) {
		out, err := bastionSSH(t, w.d, knownHosts, g.KeyFile, g.CertificateFile, login+"@db1", "echo genuine-in")
		if err != nil || !strings.Contains(out, "genuine-in") {
			t.Fatalf("ssh with the genuine certificate: %v, output %q", err, out)
		}
	})
}

// bastionKnownHosts writes a known_hosts file trusting d's host CA for the
// bastion's alias, as jit ssh does.
func bastionKnownHosts(t *testing.T, d *daemon, dir string) string {
	t.Helper()
	hostCA := strings.TrimSpace(string(readFile(t, filepath.Join(d.Data, "ca", "host_ca.pub"))))
	path := filepath.Join(dir, "known_hosts")
	secWrite(t, path, []byte("@cert-authority jitssh-bastion "+hostCA+"\n"))
	return path
}

// bastionSSH runs stock ssh through d's bastion as user (LOGIN@HOST) with
// the key and certificate files, and returns its combined output.
func bastionSSH(t *testing.T, d *daemon, knownHosts, keyFile, certFile, user, command string) (string, error) {
	t.Helper()
	host, port, ok := strings.Cut(d.Bastion, ":")
	if !ok {
		t.Fatalf("bastion address %q", d.Bastion)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", "none", "-p", port, "-i", keyFile,
		"-o", "CertificateFile="+certFile, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=jitssh-bastion", "-l", user, host, command)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type keyFile struct {
	file string
	pub  ssh.PublicKey
}

// writeNewKey writes a fresh ed25519 private key to path (0600) for ssh -i.
func writeNewKey(t *testing.T, path string) keyFile {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return keyFile{file: path, pub: sshPub}
}

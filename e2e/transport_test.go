package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

// ssh-audit's exit codes (ssh_audit/exitcodes.py).
const (
	sshAuditGood    = 0
	sshAuditWarning = 2
	sshAuditFailure = 3
)

// transportWeak matches algorithms that no hardening guide keeps, whatever
// the installed ssh-audit rates them: SHA-1 and finite-field exchanges,
// NIST-curve ECDH, SHA-1 and encrypt-and-MAC MACs, SHA-1 RSA and ECDSA
// host keys. It is checked on top of ssh-audit's own verdict, whose ratings
// differ between versions (2.5 rates some of these warn, later ones fail).
var transportWeak = regexp.MustCompile(`^(diffie-hellman-.*|ecdh-sha2-.*|hmac-sha1.*|hmac-md5.*|umac-.*|hmac-sha2-(256|512)|ssh-rsa|ssh-rsa-cert-v01@openssh\.com|ssh-dss.*|ecdsa-sha2-.*)$`)

// TestTransportSSHAudit runs Debian's ssh-audit against the bastion that
// jitd serve starts: no algorithm it rates fail, none of transportWeak on
// offer, strict key exchange (Terrapin) advertised.
func TestTransportSSHAudit(t *testing.T) {
	t.Parallel()
	audit := secRequire(t, "ssh-audit", "ssh-audit")
	alice := newEngineer(t, "alice")
	d := startDaemon(t, renderPolicy(t, cliPolicy, "deploy", []*engineer{alice}, nil), "--bastion", "127.0.0.1:0")
	host, port, err := net.SplitHostPort(d.Bastion)
	if err != nil {
		t.Fatal(err)
	}
	text, code := runSSHAudit(t, audit, "-n", "-p", port, host)
	fails := regexp.MustCompile(`(?m)^.*\[fail\].*$`).FindAllString(text, -1)
	if code == sshAuditFailure || len(fails) > 0 {
		t.Errorf("ssh-audit rates the bastion fail (exit %d):\n%s\nfull report:\n%s", code, strings.Join(fails, "\n"), text)
	} else if code != sshAuditGood && code != sshAuditWarning {
		t.Fatalf("ssh-audit exit %d (connection error?):\n%s", code, text)
	}

	js, _ := runSSHAudit(t, audit, "-j", "-p", port, host)
	var rep struct {
		Kex []struct{ Algorithm string } `json:"kex"`
		Key []struct{ Algorithm string } `json:"key"`
		Enc []string                     `json:"enc"`
		Mac []string                     `json:"mac"`
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("ssh-audit -j output: %v\n%s", err, js)
	}
	var offered []string
	for _, k := range rep.Kex {
		offered = append(offered, k.Algorithm)
	}
	for _, k := range rep.Key {
		offered = append(offered, k.Algorithm)
	}
	offered = append(append(offered, rep.Enc...), rep.Mac...)
	for _, a := range offered {
		if transportWeak.MatchString(a) {
			t.Errorf("bastion offers %s", a)
		}
	}
	if !slices.ContainsFunc(rep.Kex, func(k struct{ Algorithm string }) bool { return k.Algorithm == "kex-strict-s-v00@openssh.com" }) {
		t.Errorf("bastion does not advertise strict key exchange (kex-strict-s-v00@openssh.com): %v", offered)
	}
}

// runSSHAudit runs ssh-audit with args and returns its output and exit code.
func runSSHAudit(t testing.TB, path string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("ssh-audit %v: %v\n%s", args, err, out)
	}
	if ctx.Err() != nil {
		t.Fatalf("ssh-audit %v did not finish within %v:\n%s", args, commandTimeout, out)
	}
	return string(out), exitCode(err)
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return 0
}

// TestTransportRefusesWeakClients connects stock OpenSSH through the bastion
// to a real target with a grant's certificate: with its defaults it gets in,
// over curve25519 (or the post-quantum hybrid) with strict key exchange; a
// client that offers only a weak key exchange, MAC or host key algorithm is
// refused before authentication.
func TestTransportRefusesWeakClients(t *testing.T) {
	t.Parallel()
	w := newSecWorld(t)
	mustRun(t, w.alice, "request", "db1", "--login", w.login, "--reason", "transport check")
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, []byte(mustRun(t, w.alice, "ssh-config", "--login", w.login, "db1")), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    []string
		wantErr string // empty: the command runs
	}{
		{name: "defaults", opts: nil},
		{name: "kex group14-sha1 only", opts: []string{"-o", "KexAlgorithms=diffie-hellman-group14-sha1"}, wantErr: "no matching key exchange method"},
		{name: "kex nistp256 only", opts: []string{"-o", "KexAlgorithms=ecdh-sha2-nistp256"}, wantErr: "no matching key exchange method"},
		// AES-GCM carries its own MAC, so a MAC is negotiated only with a
		// cipher that needs one: offer such a cipher with hmac-sha1.
		{name: "hmac-sha1 only", opts: []string{"-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1"}, wantErr: "no matching"},
		{name: "ssh-rsa host key only", opts: []string{"-o", "HostKeyAlgorithms=ssh-rsa,ssh-rsa-cert-v01@openssh.com"}, wantErr: "no matching host key type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-F", cfg, "-vvv", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"}, tc.opts...)
			args = append(args, "db1", "echo", "transport-ok")
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, sshdtest.Path("ssh"), args...)
			cmd.Env, cmd.Dir = w.alice.env(), w.alice.Home
			out, err := cmd.CombinedOutput()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(string(out), tc.wantErr) {
					t.Fatalf("ssh %v: %v, want refused with %q:\n%s", tc.opts, err, tc.wantErr, out)
				}
				return
			}
			if err != nil || !strings.Contains(string(out), "transport-ok") {
				t.Fatalf("stock ssh through the bastion: %v\n%s", err, out)
			}
			kex := regexp.MustCompile(`kex: algorithm: (\S+)`).FindStringSubmatch(string(out))
			if kex == nil || (kex[1] != "curve25519-sha256" && kex[1] != "mlkem768x25519-sha256") {
				t.Errorf("negotiated key exchange %v, want curve25519-sha256 or mlkem768x25519-sha256", kex)
			}
			if !strings.Contains(string(out), "will use strict KEX ordering") {
				t.Errorf("ssh did not negotiate strict key exchange with the bastion:\n%s", out)
			}
		})
	}
}

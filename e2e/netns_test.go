package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/netnstest"
	"github.com/jitssh/jitssh/internal/sshdtest"
)

// netnsPolicy lets alice reach db1 and db2 with a reason alone; auditor
// reads the trail.
const netnsPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
auditors: {groups: [secops]}
hosts:
  db1: {address: "{{index .Addr "db1"}}"}
  db2: {address: "{{index .Addr "db2"}}"}
roles:
  - name: ops
    groups: [dev]
    hosts: {names: [db1, db2]}
    logins: [{{.Login}}]
    ttl: 10m
    justification: {min_length: 10}
`

// nsBastionTarget is secBastionTarget on a separate host: a real sshd in
// h's network namespace at h.Addr:22, its host key certified by d's host
// CA for host, trusting only d's target CA and accepting LOGIN@host.
func nsBastionTarget(t testing.TB, d *daemon, h *netnstest.Host, host string) *sshdtest.Server {
	t.Helper()
	keys, err := ca.LoadKeys(filepath.Join(d.Data, "ca"))
	if err != nil {
		t.Fatalf("load CA keys of %s: %v", d.Data, err)
	}
	return sshdtest.Start(t, sshdtest.Config{
		Wrap: h.Argv, ListenHost: h.Addr.String(),
		TrustedUserCAKeys: []ssh.PublicKey{keys.Target.PublicKey()},
		Principals:        []string{sshdtest.LocalUser(t) + "@" + host},
		HostCA:            keys.Host,
		HostName:          host,
	})
}

// TestNetnsSourceAddressEnforced runs the bastion in the root namespace and
// two targets on hosts of their own, so the bastion dials non-loopback
// addresses: towards db1 its connections come from db1's veth peer
// (db1.HostAddr), towards db2 from db2.HostAddr. With --egress naming only
// db1's side, the per-session target certificates carry source-address
// db1.HostAddr/32: exec and pty sessions on db1 run, and db2, which sees the
// same kind of certificate presented from another address, refuses it; the
// bastion reports the refusal to the engineer and in the audit trail.
func TestNetnsSourceAddressEnforced(t *testing.T) {
	t.Parallel()
	sshdtest.Require(t, "sshd", "ssh")
	h1, h2 := netnstest.New(t, "db1"), netnstest.New(t, "db2")
	alice, auditor := newEngineer(t, "alice"), newEngineer(t, "auditor")
	login := sshdtest.LocalUser(t)
	d := initDaemon(t)
	db1, db2 := nsBastionTarget(t, d, h1, "db1"), nsBastionTarget(t, d, h2, "db2")
	policy := renderPolicy(t, netnsPolicy, login, []*engineer{alice, auditor}, map[string]*sshdtest.Server{"db1": db1, "db2": db2})
	d.serve(t, policy, "--bastion", "127.0.0.1:0", "--egress", h1.HostAddr.String()+"/32")
	d.login(t, alice)
	d.login(t, auditor)

	t.Run("exec on db1 comes from the bastion's egress address", func(t *testing.T) {
		r := start(t, alice, "ssh", login+"@db1", "--reason", "check the source address", "--", "echo conn=$SSH_CONNECTION; exit 5").wait(t, commandTimeout)
		want := "conn=" + h1.HostAddr.String() + " "
		if r.Code != 5 || !strings.Contains(r.Stdout, want) || !strings.Contains(r.Stdout, " "+h1.Addr.String()+" 22") {
			t.Fatalf("jit ssh db1: %v\nwant exit 5 and SSH_CONNECTION from %s to %s 22\ndb1 log:\n%s", r, h1.HostAddr, h1.Addr, db1.Log())
		}
		if !db1.WaitLog(`Accepted certificate ID "jit:`, sessionWait) {
			t.Fatalf("db1 did not log the per-session certificate:\n%s", db1.Log())
		}
		s := secSessionWith(t, auditor, "conn=$SSH_CONNECTION", sessionWait)
		if s.Host != "db1" || s.ExitStatus != 5 || s.TargetSerial == 0 {
			t.Errorf("session %+v, want db1 with exit status 5 and a target serial", s)
		}
	})

	t.Run("pty on db1", func(t *testing.T) {
		r := start(t, alice, "ssh", "-t", login+"@db1", "--", "echo hi-ns-pty; exit 3").wait(t, commandTimeout)
		if r.Code != 3 || !strings.Contains(r.Stdout, "hi-ns-pty") {
			t.Fatalf("jit ssh -t db1: %v; want exit 3 and the output", r)
		}
		if s := secSessionWith(t, auditor, "hi-ns-pty", sessionWait); s.ExitStatus != 3 {
			t.Errorf("pty session %+v, want exit status 3", s)
		}
	})

	t.Run("db2 refuses a certificate from another address", func(t *testing.T) {
		r := start(t, alice, "ssh", login+"@db2", "--reason", "check the source address", "--", "echo reached-db2").wait(t, commandTimeout)
		if r.Code == 0 || strings.Contains(r.Stdout, "reached-db2") {
			t.Fatalf("jit ssh db2 with a certificate for %s/32 from %s: %v; want a refusal", h1.HostAddr, h2.HostAddr, r)
		}
		if !db2.WaitLog("not from a permitted source address", sessionWait) {
			t.Fatalf("db2 log lacks the source-address refusal:\n%s", db2.Log())
		}
		evs := auditList(t, auditor, "--event", "session.rejected")
		ev, ok := findEvent(evs, "session.rejected", func(ev auditEvent) bool {
			return ev.Host == "db2" && strings.Contains(ev.Message, "target:") && strings.Contains(ev.Message, "unable to authenticate")
		})
		if !ok {
			t.Fatalf("no session.rejected event for db2 naming the target's refusal in %+v", evs)
		}
		if ev.User != "alice" {
			t.Errorf("event %+v, want alice's", ev)
		}
	})
}

// TestNetnsDefaultEgress checks the default of --egress (issue 10): the
// source address the bastion dials each target from, so that a target on
// a host of its own still gets a source-address restriction. sshd logs,
// at DEBUG3, each critical option it finds in a certificate.
func TestNetnsDefaultEgress(t *testing.T) {
	t.Parallel()
	sshdtest.Require(t, "sshd", "ssh")
	h := netnstest.New(t, "db1")
	alice, auditor := newEngineer(t, "alice"), newEngineer(t, "auditor")
	login := sshdtest.LocalUser(t)
	d := initDaemon(t)
	keys, err := ca.LoadKeys(filepath.Join(d.Data, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	db1 := sshdtest.Start(t, sshdtest.Config{
		Wrap: h.Argv, ListenHost: h.Addr.String(),
		TrustedUserCAKeys: []ssh.PublicKey{keys.Target.PublicKey()},
		Principals:        []string{login + "@db1"},
		HostCA:            keys.Host, HostName: "db1",
		Extra: []string{"LogLevel DEBUG3"},
	})
	// db2 of the policy is db1 again: this test needs one target.
	policy := renderPolicy(t, netnsPolicy, login, []*engineer{alice, auditor}, map[string]*sshdtest.Server{"db1": db1, "db2": db1})
	d.serve(t, policy, "--bastion", "127.0.0.1:0")
	d.login(t, alice)
	r := start(t, alice, "ssh", login+"@db1", "--reason", "check the default egress", "--", "echo conn=$SSH_CONNECTION").wait(t, commandTimeout)
	if r.Code != 0 || !strings.Contains(r.Stdout, "conn="+h.HostAddr.String()+" ") {
		t.Fatalf("jit ssh db1: %v; want a session from %s", r, h.HostAddr)
	}
	// The option's length on the wire: a 4-byte length and the CIDR.
	want := fmt.Sprintf(`found certificate option "source-address" len %d`, 4+len(h.HostAddr.String()+"/32"))
	if !db1.WaitLog(want, sessionWait) {
		t.Fatalf("db1 log lacks %q: the target certificate has no source-address %s/32:\n%s", want, h.HostAddr, db1.Log())
	}
}

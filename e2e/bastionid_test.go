package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/sshdtest"
)

// freePort returns a TCP port free on host just now, for a daemon that must
// be told its public address before it listens.
func freePort(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", host, err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestBastionPublicAddr serves the bastion on 127.0.0.2 only, with public
// addresses 127.0.0.2:PORT and jitssh-bastion.test:PORT: jit ssh dials what
// /v1/ca advertises, and stock ssh checks the bastion's host certificate
// under each public name (HostKeyAlias stands in for a name this test may
// not make resolvable), not under another.
func TestBastionPublicAddr(t *testing.T) {
	t.Parallel()
	w := newSecWorldStopped(t)
	port := freePort(t, "127.0.0.2")
	w.serve(t, "--bastion", "127.0.0.2:"+port, "--public-addr", "127.0.0.2:"+port, "--public-addr", "jitssh-bastion.test:"+port)
	w.d.login(t, w.alice)
	if r := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "check the disk space", "--", "echo through-public-addr").wait(t, commandTimeout); r.Code != 0 ||
		r.Stdout != "through-public-addr\n" {
		t.Fatalf("jit ssh through the bastion at its public address: %v", r)
	}
	hostCA, err := os.ReadFile(filepath.Join(w.d.Data, "ca", "host_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(w.alice.Home, "state", "keys", w.login+"@db1")
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"127.0.0.2", true}, {"jitssh-bastion.test", true}, {"other.test", false}} {
		t.Run(tc.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte("@cert-authority "+tc.name+" "+string(hostCA)), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, sshdtest.Path("ssh"), "-F", "none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
				"-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlias="+tc.name,
				"-o", "IdentitiesOnly=yes", "-i", key, "-o", "CertificateFile="+key+"-cert.pub",
				"-p", port, "-l", w.login+"@db1", "127.0.0.2", "echo plain-ssh")
			cmd.Env = w.alice.env()
			out, err := cmd.CombinedOutput()
			if got := err == nil && strings.Contains(string(out), "plain-ssh"); got != tc.ok {
				t.Errorf("ssh checking the bastion as %s: %v\n%s\nwant success %v", tc.name, err, out, tc.ok)
			}
		})
	}
}

// TestBastionAdvertisedNames: jit ssh-config writes the first public
// address as HostName and Port, a name or an IPv6 address alike, and
// jitd refuses a bastion on every address without one.
func TestBastionAdvertisedNames(t *testing.T) {
	t.Parallel()
	alice := newEngineer(t, "alice")
	policy := renderPolicy(t, cliPolicy, "deploy", []*engineer{alice}, nil)
	for _, tc := range []struct{ public, host, port string }{
		{"jitssh-bastion.test:2222", "jitssh-bastion.test", "2222"},
		{"[2001:db8::7]:22", "2001:db8::7", "22"},
	} {
		t.Run(tc.public, func(t *testing.T) {
			d := startDaemon(t, policy, "--bastion", "127.0.0.1:0", "--public-addr", tc.public)
			d.login(t, alice)
			out := mustRun(t, alice, "ssh-config", "--login", "deploy", "db1")
			for _, want := range []string{"    HostName " + tc.host + "\n", "    Port " + tc.port + "\n", "    HostKeyAlias jitssh-bastion\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("jit ssh-config lacks %q:\n%s", want, out)
				}
			}
		})
	}
	t.Run("every address without a public one", func(t *testing.T) {
		d := initDaemon(t)
		if err := os.WriteFile(filepath.Join(d.Data, "policy.yaml"), []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin(t, "jitd"), "serve", "--data", d.Data, "--api", "127.0.0.1:0", "--bastion", "0.0.0.0:0").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "add --public-addr NAME:PORT, the name engineers dial") {
			t.Errorf("jitd serve --bastion 0.0.0.0:0: %v\n%s\nwant a refusal saying to add --public-addr", err, out)
		}
	})
}

const hostsPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  bob: {groups: [ops], keys: [{{index .Key "bob"}}]}
hosts:
  web1: {address: "127.0.0.1:22", labels: {env: staging, role: web}}
  web2: {address: "127.0.0.1:22", labels: {env: staging, role: web}}
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
  secret1: {address: "127.0.0.1:22", labels: {env: vault}}
roles:
  - name: staging
    groups: [dev]
    hosts: {labels: {env: staging}}
    logins: [deploy]
    max_ttl: 1h
    justification: {min_length: 10}
  - name: prod-root
    groups: [dev]
    hosts: {names: [db1]}
    logins: [root]
    max_ttl: 30m
    justification: {min_length: 10, ticket: '^CHG-[0-9]+'}
    approval: {approvers: [ops], count: 1}
  - name: vault
    groups: [ops]
    hosts: {labels: {env: vault}}
    logins: [admin]
`

// TestHostsForEngineers: jit hosts lists what the caller may request (text
// and JSON), an unknown name in jit request suggests the nearest of those
// names and never another's, and completion offers them.
func TestHostsForEngineers(t *testing.T) {
	t.Parallel()
	alice, bob := newEngineer(t, "alice"), newEngineer(t, "bob")
	d := startDaemon(t, renderPolicy(t, hostsPolicy, "deploy", []*engineer{alice, bob}, nil))
	d.login(t, alice)
	d.login(t, bob)

	text := mustRun(t, alice, "hosts")
	want := []string{
		"HOST  LOGIN   ROLE       NEEDS            MAX TTL  LABELS",
		"db1   root    prod-root  approval+ticket  30m0s    env=prod",
		"web1  deploy  staging    -                1h0m0s   env=staging,role=web",
		"web2  deploy  staging    -                1h0m0s   env=staging,role=web",
	}
	if got := strings.Split(strings.TrimRight(text, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("jit hosts:\n%s\nwant:\n%s", text, strings.Join(want, "\n"))
	}
	var hosts []api.HostEntry
	for _, line := range strings.Split(strings.TrimRight(mustRun(t, alice, "hosts", "--format", "json"), "\n"), "\n") {
		var h api.HostEntry
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatalf("jit hosts --format json line %q: %v", line, err)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) != 3 || hosts[0].Name != "db1" || !slices.Equal(hosts[0].Logins, []api.HostLogin{{Login: "root", Role: "prod-root", Approval: true, Ticket: true, MaxTTL: "30m0s"}}) ||
		hosts[2].Labels["role"] != "web" {
		t.Errorf("jit hosts --format json: %+v", hosts)
	}

	_, stderr, code := run(t, alice, "request", "webl", "--login", "deploy", "--reason", "deploy release 43")
	if code != 3 || !strings.Contains(stderr, `unknown host "webl"`) || !strings.Contains(stderr, "jit: hint: did you mean web1, web2?") {
		t.Errorf("jit request webl: exit %d, stderr %q; want 3 and a hint naming web1, web2", code, stderr)
	}
	// secret2 is one edit from secret1, which alice may not request: the
	// hint names none of it.
	_, stderr, code = run(t, alice, "request", "secret2", "--login", "admin", "--reason", "open the vault now")
	if code != 3 || strings.Contains(stderr, "secret1") || !strings.Contains(stderr, "jit hosts lists the hosts you may request") {
		t.Errorf("jit request secret2: exit %d, stderr %q; want 3, no secret1, a pointer to jit hosts", code, stderr)
	}
	if out := mustRun(t, bob, "hosts"); !strings.Contains(out, "secret1") || strings.Contains(out, "web1") {
		t.Errorf("bob's hosts:\n%s", out)
	}

	comp := strings.Fields(mustRun(t, alice, "request", "--generate-bash-completion"))
	for _, w := range []string{"web1", "deploy@web1", "db1", "root@db1"} {
		if !slices.Contains(comp, w) {
			t.Errorf("jit request completion %q lacks %q", comp, w)
		}
	}
	if slices.Contains(comp, "secret1") {
		t.Errorf("jit request completion %q offers a host alice may not request", comp)
	}
}

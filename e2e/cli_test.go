package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

const cliPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: prod-db
    groups: [dev]
    hosts: {names: [db1]}
    logins: [deploy]
    justification: {min_length: 10}
`

// TestCompletionAndSSHConfig checks the shell integration: jit completion
// prints scripts bash accepts, and jit ssh-config prints Host blocks that
// OpenSSH resolves to the bastion with the grant's key and certificate.
func TestCompletionAndSSHConfig(t *testing.T) {
	t.Parallel()
	alice := newEngineer(t, "alice")
	d := startDaemon(t, renderPolicy(t, cliPolicy, "deploy", []*engineer{alice}, nil), "--bastion", "127.0.0.1:0")
	if d.Bastion == "" {
		t.Fatal("jitd serve --bastion logged no bastion address")
	}
	d.login(t, alice)

	t.Run("completion", func(t *testing.T) {
		tests := []struct {
			shell string
			want  string
		}{
			{shell: "bash", want: "complete -o default -F _jit_complete jit"},
			{shell: "zsh", want: "compdef _jit jit"},
			{shell: "fish", want: "complete -c jit"},
		}
		for _, tc := range tests {
			out := mustRun(t, alice, "completion", tc.shell)
			if !strings.Contains(out, tc.want) {
				t.Errorf("jit completion %s lacks %q:\n%s", tc.shell, tc.want, out)
			}
		}
		if bash, err := exec.LookPath("bash"); err == nil {
			script := filepath.Join(t.TempDir(), "jit.bash")
			if err := os.WriteFile(script, []byte(mustRun(t, alice, "completion", "bash")), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
				t.Errorf("bash -n rejects the completion script: %v\n%s", err, out)
			}
		}
		// The scripts ask jit itself for candidates.
		out := mustRun(t, alice, "--generate-bash-completion")
		for _, cmd := range []string{"request", "approve", "ssh-config", "audit"} {
			if !strings.Contains(out, cmd) {
				t.Errorf("jit --generate-bash-completion lacks %q:\n%s", cmd, out)
			}
		}
		if _, stderr, code := run(t, alice, "completion", "tcsh"); code != 2 {
			t.Errorf("jit completion tcsh: exit %d (%s), want usage error 2", code, stderr)
		}
	})

	// No login asks for a one-time account (issue 13): not a usage error
	// any more, but a refusal naming what to do where no role gives one.
	t.Run("no login", func(t *testing.T) {
		_, stderr, code := run(t, alice, "request", "db1", "--reason", "fix the thing")
		if code != 3 || !strings.Contains(stderr, "ephemeral account") || !strings.Contains(stderr, "--login") {
			t.Errorf("jit request db1 without a login: exit %d, stderr %q; want 3 naming --login", code, stderr)
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{name: "unknown command", args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
			{name: "unknown subcommand", args: []string{"admin", "user", "frob"}, want: `unknown command "frob" (see jit admin user --help)`},
			{name: "unknown flag", args: []string{"request", "db1", "--bogus"}, want: "see jit request --help"},
			{name: "no host", args: []string{"request", "--login", "deploy", "--reason", "fix the thing"}, want: "host"},
			{name: "bad duration", args: []string{"request", "db1", "--login", "deploy", "--reason", "fix the thing", "--ttl", "soon"}, want: "ttl"},
			{name: "bad format", args: []string{"--format", "yaml", "status"}, want: `--format "yaml"`},
			{name: "bad agent mode", args: []string{"request", "db1", "--login", "deploy", "--reason", "fix the thing", "--add-to-agent", "maybe"}, want: "--add-to-agent"},
			{name: "deny without reason", args: []string{"deny", "req_x"}, want: "reason"},
		}
		for _, tc := range tests {
			stdout, stderr, code := run(t, alice, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%s: jit %s: exit %d, stderr %q; want 2 mentioning %q", tc.name, strings.Join(tc.args, " "), code, stderr, tc.want)
			}
			if stdout != "" && !strings.Contains(stdout, "USAGE") {
				t.Errorf("%s: stdout %q", tc.name, stdout)
			}
		}
		jitdOut, err := exec.Command(bin(t, "jitd"), "frobnicate").CombinedOutput()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(string(jitdOut), "unknown command") {
			t.Errorf("jitd frobnicate: %v %q, want exit 2 naming the unknown command", err, jitdOut)
		}
	})

	t.Run("global format flag", func(t *testing.T) {
		mustRun(t, alice, "request", "db1", "--login", "deploy", "--reason", "deploy release 43")
		for _, args := range [][]string{{"--format", "json", "status"}, {"status", "--format", "json"}} {
			out := mustRun(t, alice, args...)
			var st struct {
				Principal string `json:"principal"`
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil || st.Principal != "deploy@db1" {
				t.Errorf("jit %s printed %q (%v), want one JSON grant for deploy@db1", strings.Join(args, " "), out, err)
			}
		}
	})

	t.Run("pinned TLS", func(t *testing.T) {
		mallory := newEngineer(t, "alice")
		mallory.Key = alice.Key
		wrong := "SHA256:" + strings.Repeat("A", 43)
		_, stderr, code := run(t, mallory, "login", "--ca", "https://"+d.API, "--fingerprint", wrong, "--user", "alice", "-i", alice.Key)
		if code == 0 || !strings.Contains(stderr, "fingerprint") {
			t.Errorf("login with the wrong pinned fingerprint: exit %d, stderr %q; want a failure naming the fingerprint", code, stderr)
		}
		if exists(filepath.Join(mallory.Home, "config.json")) {
			if b := readFile(t, filepath.Join(mallory.Home, "config.json")); strings.Contains(string(b), `"token"`) {
				t.Errorf("a token was stored after a failed pin: %s", b)
			}
		}
	})

	t.Run("logout", func(t *testing.T) {
		mustRun(t, alice, "logout")
		_, stderr, code := run(t, alice, "requests")
		if code != 1 || !strings.Contains(stderr, "jit login") {
			t.Errorf("jit requests after logout: exit %d, stderr %q; want 1 and a hint to log in", code, stderr)
		}
		d.login(t, alice)
	})

	t.Run("ssh-config", func(t *testing.T) {
		sshdtest.Require(t, "ssh")
		out := mustRun(t, alice, "ssh-config", "--login", "deploy", "db1")
		cfgFile := filepath.Join(t.TempDir(), "ssh_config")
		if err := os.WriteFile(cfgFile, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, sshdtest.Path("ssh"), "-G", "-F", cfgFile, "db1")
		cmd.Env = alice.env()
		resolved, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G -F %s db1: %v\n%s\nconfig:\n%s", cfgFile, err, resolved, out)
		}
		host, port, err := net.SplitHostPort(d.Bastion)
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(alice.Home, "state", "keys", "deploy@db1")
		opts := sshOptions(string(resolved))
		for _, want := range []struct{ option, value string }{
			{option: "hostname", value: host},
			{option: "port", value: port},
			{option: "user", value: "deploy@db1"},
			{option: "certificatefile", value: key + "-cert.pub"},
			{option: "identityfile", value: key},
			{option: "identitiesonly", value: "yes"},
			{option: "stricthostkeychecking", value: "true"},
			{option: "forwardagent", value: "no"},
			{option: "hostkeyalias", value: "jitssh-bastion"},
		} {
			if !slices.Contains(opts[want.option], want.value) {
				t.Errorf("ssh -G: %s = %q, want %q\nconfig:\n%s", want.option, opts[want.option], want.value, out)
			}
		}
		// The known_hosts file it names trusts the host CA for the bastion
		// only: no trust on first use.
		kh := opts["userknownhostsfile"]
		if len(kh) != 1 {
			t.Fatalf("userknownhostsfile = %q, want one file", kh)
		}
		b, err := os.ReadFile(kh[0])
		if err != nil {
			t.Fatalf("read known_hosts named by ssh-config: %v", err)
		}
		hostCA, err := os.ReadFile(filepath.Join(d.Data, "ca", "host_ca.pub"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "@cert-authority jitssh-bastion " + strings.TrimSpace(string(hostCA)); strings.TrimSpace(string(b)) != want {
			t.Errorf("known_hosts = %q, want %q", b, want)
		}
		// Another host name falls through to ssh's defaults.
		other, err := exec.CommandContext(ctx, sshdtest.Path("ssh"), "-G", "-F", cfgFile, "elsewhere").CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G elsewhere: %v\n%s", err, other)
		}
		if strings.Contains(string(other), "deploy@db1") {
			t.Errorf("the generated config applies to other hosts too:\n%s", other)
		}
	})
}

// sshOptions parses `ssh -G` output: one "option value" per line; options
// that may repeat collect every value.
func sshOptions(out string) map[string][]string {
	opts := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok {
			opts[name] = append(opts[name], value)
		}
	}
	return opts
}

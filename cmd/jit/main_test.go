package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/jitclient"
)

// TestExitCodesWithoutLogin checks the order docs/cli.md promises: a usage
// error is reported as one (2) before the missing login (1) is noticed.
func TestExitCodesWithoutLogin(t *testing.T) {
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		// No login asks for a one-time account: not a usage error.
		{[]string{"request", "db1", "--reason", "x"}, exitError, "not logged in"},
		{[]string{"request", "db1", "--login", "deploy", "--reason", "x", "--add-to-agent", "maybe"}, exitUsage, "--add-to-agent"},
		{[]string{"request", "db1", "--login", "deploy", "--reason", "x", "--key", "id_ed25519"}, exitUsage, "KEY.pub"},
		{[]string{"request", "db1", "--login", "deploy"}, exitUsage, "--reason is required"},
		{[]string{"wait"}, exitUsage, "give one request id"},
		{[]string{"approve", "a", "b"}, exitUsage, "give one request id"},
		{[]string{"admin", "revoke", "0", "--reason", "x"}, exitUsage, "not a positive number"},
		{[]string{"replay", "s1", "--speed", "0"}, exitUsage, "--speed must be positive"},
		{[]string{"replay", "s1", "--at", "1", "--from", "2s"}, exitUsage, "--at or --from"},
		{[]string{"sessions", "export", "s1", "--format", "pdf"}, exitUsage, `--format "pdf" must be cast or text`},
		{[]string{"ssh"}, exitUsage, "give a host"},
		// A bad --format is refused before anything is done, not after a
		// request was made, a decision taken or a token stored.
		{[]string{"approve", "req_1", "--format", "yaml"}, exitUsage, `--format "yaml" must be text or json`},
		{[]string{"request", "db1", "--login", "deploy", "--reason", "x", "--format", "yaml"}, exitUsage, `--format "yaml"`},
		{[]string{"login", "--ca", "https://127.0.0.1:1", "--fingerprint", "SHA256:x", "--user", "alice", "--format", "yaml"}, exitUsage, `--format "yaml"`},
		{[]string{"sessions", "list", "--format", "yaml"}, exitUsage, `--format "yaml"`},
		{[]string{"completion", "tcsh"}, exitUsage, "bash, zsh or fish"},
		{[]string{"requests"}, exitError, "not logged in"},
		{[]string{"krl", "-o", "x"}, exitError, "not logged in"},
		{[]string{"wait", "r1"}, exitError, "not logged in"},
		{[]string{"status"}, 0, "no live grants"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("JIT_HOME", t.TempDir())
			t.Setenv("JIT_ADDR", "")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"jit"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, stderr.String(), tt.wantCode, tt.wantStderr)
			}
		})
	}
}

// TestOutcomeExitCodes maps each way a grant fails to come to the exit
// code docs/cli.md gives it, with jitclient's message unchanged.
func TestOutcomeExitCodes(t *testing.T) {
	r := api.Request{ID: "r1", State: "denied", DecidedBy: "bob", DecisionReason: "no"}
	apiErr := &api.Error{Status: 403, Code: "policy_denied", Message: "no"}
	tests := []struct {
		name     string
		err      error
		wantCode int // 0: the error passes through for run to map
	}{
		{"denied", &jitclient.DeniedError{Request: r}, exitDenied},
		{"ended", &jitclient.EndedError{Request: api.Request{ID: "r1", State: "expired"}}, exitEnded},
		{"timed out", &jitclient.StoppedError{ID: "r1"}, exitTimedOut},
		{"interrupted", &jitclient.StoppedError{ID: "r1", Interrupted: true}, exitInterrupted},
		{"no agent", jitclient.ErrNoAgent, exitUsage},
		{"wrapped denial", fmt.Errorf("wait: %w", &jitclient.DeniedError{Request: r}), exitDenied},
		{"api error", apiErr, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			e := &env{stdout: &bytes.Buffer{}, stderr: &stderr}
			err := e.outcome(jitclient.Obtained{}, tt.err)
			var ec cli.ExitCoder
			switch {
			case tt.wantCode == 0:
				if err != tt.err {
					t.Errorf("outcome changed %v into %v", tt.err, err)
				}
			case !errors.As(err, &ec) || ec.ExitCode() != tt.wantCode:
				t.Errorf("outcome %v, want exit %d", err, tt.wantCode)
			case err.Error() != tt.err.Error():
				t.Errorf("message %q, want %q", err.Error(), tt.err.Error())
			}
		})
	}
}

func TestOutcomePrintsAgentWarning(t *testing.T) {
	var stderr bytes.Buffer
	e := &env{stdout: &bytes.Buffer{}, stderr: &stderr}
	if err := e.outcome(jitclient.Obtained{AgentWarning: errors.New("agent gone")}, nil); err != nil {
		t.Fatal(err)
	}
	if stderr.String() != "jit: warning: agent gone\n" {
		t.Errorf("stderr %q", stderr.String())
	}
}

// TestRepeatableFlagKeepsCommas checks that a repeatable flag's value is
// taken whole: a key file whose path holds a comma is read (the command then
// stops at the missing login), not split into two paths that do not exist.
func TestRepeatableFlagKeepsCommas(t *testing.T) {
	t.Setenv("JIT_HOME", t.TempDir())
	t.Setenv("JIT_ADDR", "")
	key := filepath.Join(t.TempDir(), "alice,laptop.pub")
	pub := testkit.Signer(t).PublicKey()
	if err := os.WriteFile(key, ssh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"jit", "admin", "user", "add", "alice", "--key", key}, strings.NewReader(""), &stdout, &stderr)
	if code != exitError || !strings.Contains(stderr.String(), "not logged in") {
		t.Errorf("exit %d, stderr %q; want %d and \"not logged in\" (the key file read whole)", code, stderr.String(), exitError)
	}
}

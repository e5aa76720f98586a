package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
)

// TestHostAccountRefusals: jit host account runs only as sshd's forced
// command (SSH_ORIGINAL_COMMAND with SSH_CONNECTION) or with --op, and
// refuses any operation but the four, always with one JSON answer. (The
// cases stop before the helper touches the machine: the request is
// refused before the state directory is made.)
func TestHostAccountRefusals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the refusals after the root check need root")
	}
	tests := []struct {
		name             string
		env              map[string]string
		args             []string
		wantCode         int
		wantErr, wantOut string
	}{
		{name: "interactive, no op", args: []string{"host", "account"}, wantCode: api.AccountExitUsage, wantErr: "force-command"},
		{name: "ssh login without forced command", env: map[string]string{"SSH_CONNECTION": "10.0.0.1 1 10.0.0.2 22"}, args: []string{"host", "account"}, wantCode: api.AccountExitUsage, wantErr: "force-command"},
		{name: "forced command outside ssh", env: map[string]string{"SSH_ORIGINAL_COMMAND": "list"}, args: []string{"host", "account"}, wantCode: api.AccountExitUsage, wantErr: "force-command"},
		{name: "arguments", args: []string{"host", "account", "list"}, wantCode: api.AccountExitUsage, wantErr: "no arguments"},
		{name: "forced shell command", env: map[string]string{"SSH_CONNECTION": "10.0.0.1 1 10.0.0.2 22", "SSH_ORIGINAL_COMMAND": "bash -i"}, args: []string{"host", "account"}, wantCode: api.AccountExitUsage, wantOut: "unknown operation"},
		{name: "by hand, unknown op", args: []string{"host", "account", "--op", "shell"}, wantCode: api.AccountExitUsage, wantOut: "unknown operation"},
		{name: "by hand, bad request", args: []string{"host", "account", "--op", "list"}, wantCode: api.AccountExitFailed, wantOut: "not one JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SSH_CONNECTION", "")
			t.Setenv("SSH_ORIGINAL_COMMAND", "")
			os.Unsetenv("SSH_CONNECTION")
			os.Unsetenv("SSH_ORIGINAL_COMMAND")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"jit"}, tt.args...), strings.NewReader("not json"), &stdout, &stderr)
			var ans api.AccountAnswer
			if err := json.Unmarshal(stdout.Bytes(), &ans); err != nil {
				t.Fatalf("stdout %q is not one answer: %v", stdout.String(), err)
			}
			if code != tt.wantCode || ans.OK || ans.Code != api.AccountCodeBadRequest ||
				!strings.Contains(stderr.String(), tt.wantErr) || !strings.Contains(ans.Error, tt.wantOut) {
				t.Fatalf("exit %d, answer %+v, stderr %q; want exit %d, bad_request with %q, stderr with %q", code, ans, stderr.String(), tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
)

// TestLoginSSOUsage: flags of key login and SSO login do not mix, and the
// mix is a usage error before the daemon is asked anything (the address
// here answers nothing).
func TestLoginSSOUsage(t *testing.T) {
	base := []string{"login", "--ca", "https://127.0.0.1:1", "--fingerprint", "SHA256:x"}
	for _, tt := range []struct {
		args       []string
		wantStderr string
	}{
		{[]string{"--sso", "-i", "key"}, "for key login"},
		{[]string{"--device", "--ttl", "1h"}, "for key login"},
		{[]string{"--provider", "corp", "--user", "alice"}, "for key login"},
		{[]string{"--refresh", "--sso"}, "--refresh renews"},
		{[]string{"--refresh", "--provider", "corp"}, "--refresh renews"},
		{[]string{"--timeout", "1m"}, "--timeout applies to --sso"},
		{[]string{"--refresh"}, "no stored login to refresh"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("JIT_HOME", t.TempDir())
			t.Setenv("JIT_ADDR", "")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(append([]string{"jit"}, base...), tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, stderr.String(), exitUsage, tt.wantStderr)
			}
		})
	}
}

// TestLoginErrorExitCodes maps each refused login to the exit code and
// message docs/cli.md and docs/sso.md give it.
func TestLoginErrorExitCodes(t *testing.T) {
	apiErr := func(code string) error {
		return fmt.Errorf("sso login at corp: %w", &api.Error{Status: http.StatusUnauthorized, Code: code, Message: "m"})
	}
	for _, tt := range []struct {
		err      error
		wantCode int
		wantMsg  string
	}{
		{apiErr(api.CodeSSONoRoles), exitDenied, "sso.groups"},
		{apiErr(api.CodeSSOAccessDenied), exitDenied, "denied"},
		{apiErr(api.CodeSSONoUser), exitDenied, "user name"},
		{apiErr(api.CodeKeyLoginDisabled), exitDenied, "turned off for alice"},
		{apiErr(api.CodeSSORefreshFailed), exitDenied, "jit login --sso"},
		{apiErr(api.CodeNotSSOLogin), exitUsage, "SSO logins only"},
		{apiErr(api.CodeSSOStateMismatch), exitError, "state mismatch"},
		{apiErr(api.CodeSSOFlowUnknown), exitError, "again"},
		{apiErr(api.CodeSSOTokenInvalid), exitError, "operators"},
		{fmt.Errorf("x: %w", &jitclient.ProviderError{Code: "access_denied"}), exitDenied, "denied access"},
		{fmt.Errorf("x: %w", jitclient.ErrTimedOut), exitTimedOut, "timed out"},
		{fmt.Errorf("x: %w", jitclient.ErrProviderChoice), exitUsage, "choose"},
		{fmt.Errorf("poll: %w", context.Canceled), exitInterrupted, "interrupted"},
	} {
		t.Run(tt.err.Error(), func(t *testing.T) {
			err := loginError(tt.err, "alice")
			var ec cli.ExitCoder
			if !errors.As(err, &ec) || ec.ExitCode() != tt.wantCode || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("loginError = %v; want exit %d mentioning %q", err, tt.wantCode, tt.wantMsg)
			}
		})
	}
	if err := loginError(errors.New("network down"), "alice"); err.Error() != "network down" {
		t.Errorf("another error is changed: %v", err)
	}
}

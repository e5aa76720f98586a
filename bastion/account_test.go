package bastion

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestPrepareAccountBeforeDial: the bastion asks the Backend to prepare the
// grant's account before it mints the target certificate and dials, once
// per connection; a refusal refuses the session with the Backend's text,
// audited, and nothing reaches the target.
func TestPrepareAccountBeforeDial(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantRun    bool
		wantStderr string
	}{
		{name: "prepared", wantRun: true},
		{name: "refused", err: errors.New("the ephemeral account jit-x could not be created on db1 (name_exists)"), wantStderr: "could not be created on db1 (name_exists)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.backend.prepareErr = tc.err
			key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
			stdout, stderr, code := run(t, e.ssh(key, e.login+"@db1", "echo ran"), "")
			if ran := code == 0 && strings.Contains(stdout, "ran"); ran != tc.wantRun || !strings.Contains(stderr, tc.wantStderr) {
				t.Fatalf("exit %d stdout %q stderr %q; want run=%t and stderr %q", code, stdout, stderr, tc.wantRun, tc.wantStderr)
			}
			e.backend.mu.Lock()
			prepared, minted := append([]AccountRequest(nil), e.backend.prepared...), len(e.backend.minted)
			mintedBefore := append([]int(nil), e.backend.mintedAtPrepare...)
			e.backend.mu.Unlock()
			if len(prepared) != 1 || prepared[0].Login != e.login || prepared[0].Host != "db1" || prepared[0].RequestID == "" {
				t.Fatalf("PrepareAccount calls %+v", prepared)
			}
			// Prepared first, then the session's target certificate.
			if mintedBefore[0] != 0 || tc.err == nil && minted != 1 {
				t.Fatalf("target certificates minted before the prepare: %d, after: %d", mintedBefore[0], minted)
			}
			started, _, rejected := e.backend.snapshot()
			if tc.err != nil && (len(started) != 0 || minted != 0 || !containsAny(rejected, "name_exists")) {
				t.Fatalf("refused session: started %+v, minted %d, rejections %q", started, minted, rejected)
			}
		})
	}
}

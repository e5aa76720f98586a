package jitclient

import (
	"errors"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

func TestOpen(t *testing.T) {
	stored := creds.Config{CA: "https://ca.example:7443", Fingerprint: "SHA256:abc", User: "alice", Token: "tok"}
	tests := []struct {
		name    string
		config  *creds.Config // nil: never logged in
		addr    string
		wantCA  string
		wantIs  error
		wantErr string
	}{
		{name: "stored address", config: &stored, wantCA: stored.CA},
		{name: "JIT_ADDR overrides", config: &stored, addr: "https://other:7443", wantCA: "https://other:7443"},
		{name: "not logged in", wantIs: creds.ErrNotLoggedIn},
		{name: "bad override", config: &stored, addr: "http://plain", wantErr: "must look like https://host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := creds.Dir{Config: t.TempDir(), State: t.TempDir()}
			if tt.config != nil {
				if err := dir.SaveConfig(*tt.config); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Open(dir, tt.addr)
			switch {
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("err = %v, want %v", err, tt.wantIs)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if c.Config.CA != tt.wantCA || c.Dir != dir {
					t.Errorf("opened %+v in %+v, want CA %s", c.Config, c.Dir, tt.wantCA)
				}
			}
		})
	}
}

func TestCountApproved(t *testing.T) {
	tests := []struct {
		decisions []string
		want      int
	}{
		{nil, 0},
		{[]string{api.DecisionApprove}, 1},
		{[]string{api.DecisionApprove, "deny", api.DecisionApprove}, 2},
		{[]string{"deny"}, 0},
	}
	for _, tt := range tests {
		var as []api.Approval
		for _, d := range tt.decisions {
			as = append(as, api.Approval{Decision: d})
		}
		if got := CountApproved(as); got != tt.want {
			t.Errorf("CountApproved(%v) = %d, want %d", tt.decisions, got, tt.want)
		}
	}
}

package livepolicy

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
)

// TestMergesStoreHosts: a host in the store replaces the file's host of the
// same name, a host only in the file keeps working, a store-only host is
// added and a removed one is left out; Diff reports the change.
func TestMergesStoreHosts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, path, string(policy.Demo()))
	src := &fakeUsers{}
	h, err := Load(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	before := h.Current()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	src.mu.Lock()
	src.hosts = []audit.Host{
		{Name: "web1", Address: "10.0.0.7:22", Labels: map[string]string{"env": "staging"}, EnrolledAt: now},
		{Name: "app3", Address: "10.0.0.8:2222", Labels: map[string]string{"env": "prod"}, EnrolledAt: now},
		{Name: "old9", Address: "10.0.0.9:22", EnrolledAt: now, RemovedAt: now},
	}
	src.mu.Unlock()
	if err := h.RefreshUsers(ctx); err != nil {
		t.Fatal(err)
	}
	p := h.Current()
	tests := []struct {
		name, wantAddr string
		wantOK         bool
	}{
		{name: "web1", wantAddr: "10.0.0.7:22", wantOK: true}, // the store's entry wins
		{name: "db1", wantAddr: "127.0.0.1:22", wantOK: true}, // file only: still works
		{name: "app3", wantAddr: "10.0.0.8:2222", wantOK: true},
		{name: "old9"}, // removed
	}
	for _, tc := range tests {
		got, ok := p.Host(tc.name)
		if ok != tc.wantOK || got.Address != tc.wantAddr {
			t.Errorf("host %s = %+v, %v; want address %q, %v", tc.name, got, ok, tc.wantAddr, tc.wantOK)
		}
		if ok && got.HostKey != nil {
			t.Errorf("host %s pins a key; enrolled hosts present their host certificate", tc.name)
		}
	}
	if d := p.Evaluate(policy.Request{User: "alice", Host: "app3", Login: "deploy", Justification: "JIRA-1 deploy"}, now); d.Reason == policy.ReasonUnknownHost {
		t.Errorf("request for the store host app3: %s", d.Message)
	}
	if diff := Diff(before, p).String(); diff == "no change" {
		t.Errorf("Diff after merging hosts = %q", diff)
	}
	// A reload of the file keeps the store's hosts merged.
	if err := h.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.Current().Host("web1"); got.Address != "10.0.0.7:22" {
		t.Errorf("after reload web1 = %+v, want the store's", got)
	}
}

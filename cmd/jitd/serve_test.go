package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/daemon"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/policy"
)

// TestServeWithReloads: each SIGHUP reloads the policy and logs the change
// or the refusal; cancelling the context ends serving, closes the daemon
// and returns nil.
func TestServeWithReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := daemon.Init(context.Background(), dir, ca.Ed25519, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var logs testkit.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d, err := daemon.New(context.Background(), daemon.Config{Dir: dir, APIAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- serveWithReloads(ctx, d, hup, log) }()

	policyFile := daemon.Layout{Dir: dir}.PolicyFile()
	steps := []struct {
		policy string
		want   string
	}{
		{policy: testkit.Edit(t, string(policy.Demo()), "  carol: {groups: [dev], keys: []}\n", ""),
			want: `msg="policy reloaded" change.summary="users -carol" change.users_removed=1`},
		{policy: testkit.BadPolicy,
			want: `msg="policy reload failed; keeping the last good policy" err="reload policy: ` + policyFile + `:2`},
	}
	for _, st := range steps {
		if err := os.WriteFile(policyFile, []byte(st.policy), 0o600); err != nil {
			t.Fatal(err)
		}
		hup <- syscall.SIGHUP
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), st.want) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line with %q within 10s:\n%s", st.want, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveWithReloads = %v after cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serveWithReloads did not return after cancel")
	}
	if conn, err := net.DialTimeout("tcp", d.Addrs().API, time.Second); err == nil {
		conn.Close()
		t.Error("the API still accepts connections: the daemon was not closed")
	}
	if !strings.Contains(logs.String(), `msg="jitd shutting down"`) {
		t.Errorf("no shutdown in the log:\n%s", logs.String())
	}
}

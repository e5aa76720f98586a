package jitclient

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

func TestObtain(t *testing.T) {
	tests := []struct {
		name        string
		issueAtOnce bool
		states      []string
		noWait      bool
		agent       AgentOptions
		wantPending bool
		wantErr     error
		wantWarning bool
	}{
		{name: "issued at once", issueAtOnce: true, agent: AgentOptions{Mode: creds.AgentNo}},
		{name: "approved while waiting", states: []string{"pending", api.StateApproved}, agent: AgentOptions{Mode: creds.AgentAuto}},
		{name: "no wait leaves it pending", states: []string{"pending"}, noWait: true, wantPending: true},
		{name: "agent yes without agent", issueAtOnce: true, agent: AgentOptions{Mode: creds.AgentYes}, wantErr: ErrNoAgent},
		{name: "agent auto with a dead agent warns", issueAtOnce: true,
			agent: AgentOptions{Mode: creds.AgentAuto, Sock: filepath.Join(t.TempDir(), "no-agent")}, wantWarning: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.issueAtOnce, f.states = tt.issueAtOnce, tt.states
			c := f.client()
			out, err := c.Obtain(context.Background(), ObtainOptions{Host: "web1", Login: "deploy", Reason: "deploy", NoWait: tt.noWait, Agent: tt.agent})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if out.Pending != tt.wantPending || (out.AgentWarning != nil) != tt.wantWarning || out.InAgent {
				t.Errorf("outcome pending=%v warning=%v in agent=%v", out.Pending, out.AgentWarning, out.InAgent)
			}
			_, _, perr := c.Dir.LoadPending("r1")
			if tt.wantPending {
				if perr != nil {
					t.Errorf("pending key not kept: %v", perr)
				}
				return
			}
			if perr == nil {
				t.Error("pending key kept after the grant was stored")
			}
			g, ok := c.Dir.Find("deploy", "web1", time.Now())
			if !ok || g.Cert.Serial != 42 || g.CertPath != out.Grant.CertPath {
				t.Fatalf("stored grant %+v (found %v), want serial 42 at %s", g, ok, out.Grant.CertPath)
			}
			if _, err := os.Stat(g.KeyPath); err != nil {
				t.Errorf("private key not stored: %v", err)
			}
		})
	}
}

// TestResumeAfterNoWait finishes, as jit wait does, a request that
// jit request --no-wait left pending.
func TestResumeAfterNoWait(t *testing.T) {
	f := newFakeDaemon(t)
	f.states = []string{"pending", "pending", api.StateApproved}
	c := f.client()
	out, err := c.Obtain(context.Background(), ObtainOptions{Host: "web1", Login: "deploy", Reason: "r", NoWait: true})
	if err != nil || !out.Pending {
		t.Fatalf("Obtain --no-wait: %+v, %v", out, err)
	}
	out, err = c.Resume(context.Background(), out.Request.ID, WaitOptions{}, AgentOptions{Mode: creds.AgentNo})
	if err != nil {
		t.Fatal(err)
	}
	if out.Grant.Cert == nil || out.Grant.Cert.Serial != 42 || f.redeems != 1 {
		t.Errorf("resumed grant %+v after %d redeems", out.Grant, f.redeems)
	}
}

// TestObtainExternalKey certifies a key jit did not make: it is read from
// the .pub, linked rather than copied, and never loaded into an agent.
func TestObtainExternalKey(t *testing.T) {
	f := newFakeDaemon(t)
	f.issueAtOnce = true
	c := f.client()
	_, pub, err := requestKey("")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "id_sk")
	if err := os.WriteFile(keyFile, []byte("a FIDO key handle"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile+".pub", []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := c.Obtain(context.Background(), ObtainOptions{Host: "web1", Login: "deploy", Reason: "r", PublicKeyFile: keyFile + ".pub",
		Agent: AgentOptions{Mode: creds.AgentYes, Sock: "/nonexistent"}})
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(out.Grant.KeyPath); err != nil || target != keyFile {
		t.Errorf("grant key %s links to %q (%v), want %s", out.Grant.KeyPath, target, err, keyFile)
	}
	if out.InAgent {
		t.Error("an external key was loaded into the agent")
	}
	if f.pubKey != pub[:len(pub)-1] {
		t.Errorf("daemon was sent %q, want the .pub line %q", f.pubKey, pub)
	}
}

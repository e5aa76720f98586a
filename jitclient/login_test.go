package jitclient

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

func TestLoginTriesEachKey(t *testing.T) {
	other := testkit.Signer(t)
	enrolled := testkit.Signer(t)
	tests := []struct {
		name    string
		signers []ssh.Signer
		wantErr string
	}{
		{name: "enrolled key first", signers: []ssh.Signer{enrolled}},
		{name: "enrolled key after another", signers: []ssh.Signer{other, enrolled}},
		{name: "no enrolled key", signers: []ssh.Signer{other}, wantErr: "login as alice: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.enrolled = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(enrolled.PublicKey())))
			c := f.client()
			cfg, res, err := Login(context.Background(), c.API, c.Config, tt.signers, 0)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Token != "new-token" || res.User != "alice" || cfg.Bastion != "bastion:2222" || cfg.HostCA == "" {
				t.Errorf("config after login %+v, answer %+v", cfg, res)
			}
		})
	}
}

func TestSigners(t *testing.T) {
	_, pemKey := testkit.SignerPEM(t, "test")
	dir := t.TempDir()
	good := filepath.Join(dir, "id")
	if err := os.WriteFile(good, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "garbage")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, identity, sock string
		wantN                int
		wantErr              string
		wantIs               error
	}{
		{name: "identity file", identity: good, wantN: 1},
		{name: "identity wins over agent", identity: good, sock: "/nonexistent", wantN: 1},
		{name: "missing identity", identity: filepath.Join(dir, "none"), wantErr: "read identity"},
		{name: "unparsable identity", identity: bad, wantErr: "parse identity " + bad},
		{name: "no agent", wantIs: ErrNoAgentSocket},
		{name: "dead agent", sock: filepath.Join(dir, "sock"), wantErr: "connect to ssh-agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss, closer, err := Signers(tt.identity, tt.sock)
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
				defer closer.Close()
				if len(ss) != tt.wantN {
					t.Errorf("%d signers, want %d", len(ss), tt.wantN)
				}
			}
		})
	}
}

package creds

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestPendingRoundTrip(t *testing.T) {
	priv, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		priv    []byte // nil: an external key
		pubFile string
	}{
		{name: "fresh key", priv: priv},
		{name: "external key", pubFile: "/home/me/.ssh/id_ed25519_sk.pub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Dir{Config: t.TempDir(), State: t.TempDir()}
			if err := d.SavePending("r1", tt.priv, tt.pubFile); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(d.pendingPath("r1"))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("pending file mode %v, want 0600", st.Mode().Perm())
			}
			gotPriv, gotPub, err := d.LoadPending("r1")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotPriv, tt.priv) || gotPub != tt.pubFile {
				t.Errorf("loaded (%x, %q), want (%x, %q)", gotPriv, gotPub, tt.priv, tt.pubFile)
			}
			if err := d.RemovePending("r1"); err != nil {
				t.Fatal(err)
			}
			if err := d.RemovePending("r1"); err != nil {
				t.Errorf("removing twice: %v", err)
			}
			if _, _, err := d.LoadPending("r1"); err == nil || !strings.Contains(err.Error(), "made elsewhere") {
				t.Errorf("load after remove: %v, want the made-elsewhere error", err)
			}
		})
	}
}

func TestLoadPendingRefusesGarbage(t *testing.T) {
	d := Dir{Config: t.TempDir(), State: t.TempDir()}
	if err := os.MkdirAll(d.pendingDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.pendingPath("r2"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.LoadPending("r2"); err == nil || !strings.Contains(err.Error(), "parse pending key of r2") {
		t.Errorf("LoadPending of garbage: %v", err)
	}
}

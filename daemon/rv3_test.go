package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
)

// rv3: an unauthenticated SSH client offering any key under a long user
// name leaves no session.rejected record on PostgreSQL (the held-back
// INSERT of events fails on the btree index of events.user), while a short
// name's refusal is recorded.
func TestRV3LongSSHUserRefusalRecorded(t *testing.T) {
	r := newReplicas(t, "")
	a := r.serve(t, r.dirA)
	addr := a.d.Addrs().Bastion
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	var b strings.Builder
	x := uint32(7)
	for b.Len() < 9000 {
		x = x*1664525 + 1013904223
		b.WriteRune(rune(0x4e00 + x%20000))
	}
	for _, user := range []string{"shortname", b.String()} {
		cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
		if c, err := ssh.Dial("tcp", addr, cfg); err == nil {
			c.Close()
			t.Fatalf("user %.20q authenticated", user)
		}
	}
	store, err := audit.OpenURL(context.Background(), r.url, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	time.Sleep(time.Second)
	evs, err := store.Events(context.Background(), audit.EventFilter{Type: "session.rejected"})
	if err != nil {
		t.Fatal(err)
	}
	long := 0
	for _, e := range evs {
		if len(e.User) > 1000 {
			long++
		}
	}
	if long == 0 {
		t.Errorf("%d session.rejected events, none for the long user name: its refusal is not recorded", len(evs))
	}
}

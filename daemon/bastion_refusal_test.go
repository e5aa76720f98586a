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

// An unauthenticated SSH client picks the user name its refusal records:
// a name far past PostgreSQL's btree limit is recorded, bounded, and a
// short name's refusal beside it too.
func TestLongSSHUserRefusalRecordedBounded(t *testing.T) {
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
	long := b.String()
	for _, user := range []string{"shortname", long} {
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
	var short, bounded int
	var evs []audit.Event
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		evs, err = store.Events(context.Background(), audit.EventFilter{Type: "session.rejected"})
		if err != nil {
			t.Fatal(err)
		}
		short, bounded = 0, 0
		for _, e := range evs {
			switch {
			case e.User == "shortname":
				short++
			case strings.HasPrefix(long, strings.TrimSuffix(e.User, "...")) && len(e.User) > 100:
				if len(e.User) > maxRefusalText+3 || len(e.Message) > 4*maxRefusalText+3 {
					t.Fatalf("refusal of the long name kept %d bytes of user, %d of message", len(e.User), len(e.Message))
				}
				bounded++
			}
		}
		if short > 0 && bounded > 0 {
			return
		}
	}
	t.Errorf("%d session.rejected events: %d for the short name, %d for the long one (want both)", len(evs), short, bounded)
}

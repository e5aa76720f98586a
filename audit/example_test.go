package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing/fstest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
)

// Approving a request: the state check, the update and the audit event are
// one atomic step, so concurrent approvers cannot both win, and the caller
// learns the outcome only once it is on disk.
func ExampleStore_Do() {
	dir, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := audit.Open(filepath.Join(dir, "jitssh.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	err = s.Do(ctx, func(tx *audit.Tx) error {
		return tx.InsertRequest(audit.Request{ID: "r1", User: "alice", Host: "db1", Login: "root",
			State: audit.StatePending, CreatedAt: now})
	})
	if err != nil {
		log.Fatal(err)
	}

	approve := func(approver string) error {
		return s.Do(ctx, func(tx *audit.Tx) error {
			r, err := tx.Request("r1")
			if err != nil {
				return err
			}
			r.State, r.DecidedBy, r.DecidedAt = audit.StateApproved, approver, now
			if err := tx.UpdateRequest(r, audit.StatePending); err != nil {
				return err
			}
			_, err = tx.Append(audit.Event{Time: now, Type: "request.approved", Actor: approver,
				User: r.User, Host: r.Host, Login: r.Login, RequestID: r.ID})
			return err
		})
	}
	fmt.Println("bob:", approve("bob"))
	fmt.Println("carol lost the race:", errors.Is(approve("carol"), audit.ErrConflict))

	res, err := s.Verify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("chain ok:", res.OK, "events:", res.Events)
	// Output:
	// bob: <nil>
	// carol lost the race: true
	// chain ok: true events: 1
}

// Tamper evidence: the bastion ends a session with EndSession, the daemon
// signs the chain head with its checkpoint key, and one Verify checks the
// chain, the checkpoint and the recording against the digest in the chain.
func ExampleStore_Verify() {
	dir, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := audit.Open(filepath.Join(dir, "jitssh.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	recordings := "/var/lib/jitssh/recordings" // where the bastion wrote, as the rows say
	cast := []byte(`{"version":2,"width":80,"height":24}` + "\n")
	files := fstest.MapFS{"2026/01/02/s1.cast": {Data: cast}}
	sum := sha256.Sum256(cast)
	err = s.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.InsertSession(audit.Session{ID: "s1", User: "alice", Host: "db1", Login: "root", StartedAt: start}); err != nil {
			return err
		}
		return tx.EndSession(audit.SessionEnd{ID: "s1", EndedAt: start.Add(time.Minute), EndReason: "exit",
			RecordingPath: recordings + "/2026/01/02/s1.cast", RecordingSHA256: hex.EncodeToString(sum[:]), RecordingSize: int64(len(cast))})
	})
	if err != nil {
		log.Fatal(err)
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.SignCheckpoint(ctx, key, start.Add(2*time.Minute)); err != nil {
		log.Fatal(err)
	}

	opts := audit.VerifyOptions{CheckpointKey: key.PublicKey(), Recordings: audit.Recordings{Dir: recordings, FS: files}}
	res, err := s.Verify(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ok:", res.OK, "events:", res.Events, "checkpoints:", res.Checkpoints, "recordings:", res.Recordings)

	files["2026/01/02/s1.cast"].Data = []byte(`{"version":2,"width":80,"height":25}` + "\n")
	if res, err = s.Verify(ctx, opts); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ok:", res.OK, "bad session:", res.BadSession)
	// Output:
	// ok: true events: 1 checkpoints: 1 recordings: 1
	// ok: false bad session: s1
}

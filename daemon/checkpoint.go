package daemon

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
)

// CheckpointMessage is the byte string the daemon signs to vouch for the
// audit chain's head: rewriting the whole chain after the fact would need
// this key too.
func CheckpointMessage(seq int64, head string, at time.Time) []byte {
	return []byte("jitssh-checkpoint-v1\n" + strconv.FormatInt(seq, 10) + "\n" + head + "\n" + at.UTC().Format(time.RFC3339Nano) + "\n")
}

// signCheckpoint signs the current chain head with signer, the checkpoint
// key, unless it was signed already.
func signCheckpoint(ctx context.Context, store *audit.Store, signer ssh.Signer, clock func() time.Time) error {
	now := clock().UTC()
	cps, err := store.Checkpoints(ctx)
	if err != nil {
		return err
	}
	errUnchanged := errors.New("unchanged")
	err = store.Do(ctx, func(tx *audit.Tx) error {
		seq, head := tx.Head()
		if seq == 0 || (len(cps) > 0 && cps[len(cps)-1].Seq == seq) {
			return errUnchanged
		}
		sig, err := signer.Sign(nil, CheckpointMessage(seq, head, now))
		if err != nil {
			return fmt.Errorf("sign checkpoint: %w", err)
		}
		return tx.AddCheckpoint(audit.Checkpoint{
			Seq: seq, HeadHash: head, Time: now, Signature: ssh.Marshal(sig),
			Key: ssh.FingerprintSHA256(signer.PublicKey()),
		})
	})
	if errors.Is(err, errUnchanged) || errors.Is(err, audit.ErrConflict) {
		return nil
	}
	return err
}

// CheckpointVerifier checks checkpoint signatures against the daemon's
// checkpoint key.
func CheckpointVerifier(pub ssh.PublicKey) func(audit.Checkpoint) error {
	return func(c audit.Checkpoint) error {
		if c.Key != ssh.FingerprintSHA256(pub) {
			return fmt.Errorf("checkpoint at seq %d was signed by %s, not the daemon's checkpoint key %s", c.Seq, c.Key, ssh.FingerprintSHA256(pub))
		}
		sig := new(ssh.Signature)
		if err := ssh.Unmarshal(c.Signature, sig); err != nil {
			return fmt.Errorf("checkpoint at seq %d: signature: %w", c.Seq, err)
		}
		if err := pub.Verify(CheckpointMessage(c.Seq, c.HeadHash, c.Time), sig); err != nil {
			return fmt.Errorf("checkpoint at seq %d: signature does not verify: %w", c.Seq, err)
		}
		return nil
	}
}

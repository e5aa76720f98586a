package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
)

// Checkpoint records the chain head at Seq, signed so that a later Verify
// can prove the log was neither rewritten nor truncated up to that point:
// rewriting the chain after the fact would need the signing key too.
type Checkpoint struct {
	Seq       int64     // seq of the event whose hash is HeadHash
	HeadHash  string    // Event.Hash at Seq
	Time      time.Time // when the checkpoint was made
	Signature []byte    // ssh.Marshal of an SSH signature over CheckpointMessage
	Key       string    // ssh.FingerprintSHA256 of the signing key
}

// CheckpointMessage is the byte string a checkpoint's signature covers:
//
//	"jitssh-checkpoint-v1\n" SEQ "\n" HEAD "\n" TIME "\n"
//
// with SEQ in decimal, HEAD the hex head hash and TIME in UTC as RFC 3339
// with as many fractional digits as needed (time.RFC3339Nano). Stores
// written since the first release carry signatures over exactly these bytes.
func CheckpointMessage(seq int64, head string, at time.Time) []byte {
	return []byte("jitssh-checkpoint-v1\n" + strconv.FormatInt(seq, 10) + "\n" + head + "\n" + at.UTC().Format(time.RFC3339Nano) + "\n")
}

// SignCheckpoint signs the current chain head with signer at time now and
// stores the checkpoint, unless the log is empty or its head already has a
// checkpoint; signed reports whether one was stored. The caller owns the key:
// this method only asks signer to sign, it never loads or creates a key.
// Events appended meanwhile are covered by the next checkpoint.
func (s *Store) SignCheckpoint(ctx context.Context, signer ssh.Signer, now time.Time) (signed bool, err error) {
	if signer == nil {
		return false, errors.New("sign checkpoint: no signer")
	}
	db, err := s.reader()
	if err != nil {
		return false, err
	}
	var seq, last int64
	var head string
	if err := db.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM events ORDER BY seq DESC LIMIT 1), 0),
		COALESCE((SELECT hash FROM events ORDER BY seq DESC LIMIT 1), ''), COALESCE((SELECT MAX(seq) FROM checkpoints), 0)`).
		Scan(&seq, &head, &last); err != nil {
		return false, fmt.Errorf("sign checkpoint: read the head: %w", err)
	}
	if seq == 0 || last >= seq {
		return false, nil
	}
	now = now.UTC()
	// Signed outside Do: the writer must not wait for a key.
	sig, err := signer.Sign(rand.Reader, CheckpointMessage(seq, head, now))
	if err != nil {
		return false, fmt.Errorf("sign checkpoint at seq %d: %w", seq, err)
	}
	c := Checkpoint{Seq: seq, HeadHash: head, Time: now, Signature: ssh.Marshal(sig), Key: ssh.FingerprintSHA256(signer.PublicKey())}
	err = s.Do(ctx, func(tx *Tx) error {
		// Another process sharing the file may have signed a head as new
		// meanwhile; one checkpoint is enough.
		if err := tx.tx.QueryRow("SELECT COALESCE(MAX(seq), 0) FROM checkpoints").Scan(&last); err != nil {
			return fmt.Errorf("sign checkpoint: last checkpoint: %w", err)
		}
		if last >= seq {
			return nil
		}
		signed = true
		return tx.AddCheckpoint(c)
	})
	if err != nil {
		return false, err
	}
	return signed, nil
}

// checkSignature reports why c's signature is not one that pub made over
// CheckpointMessage, or nil when it is.
func checkSignature(c Checkpoint, pub ssh.PublicKey) error {
	if want := ssh.FingerprintSHA256(pub); c.Key != want {
		return fmt.Errorf("signed by %s, not the checkpoint key %s", c.Key, want)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(c.Signature, sig); err != nil {
		return fmt.Errorf("cannot be decoded: %w", err)
	}
	if err := pub.Verify(CheckpointMessage(c.Seq, c.HeadHash, c.Time), sig); err != nil {
		return fmt.Errorf("does not verify: %w", err)
	}
	return nil
}

// AddCheckpoint stores c as given; SignCheckpoint is how the daemon makes
// one. c.Seq must be an event already in the chain (as seen inside this
// transaction) and c.HeadHash its hash; a second checkpoint at the same Seq
// is ErrConflict.
func (t *Tx) AddCheckpoint(c Checkpoint) error {
	if err := t.check(); err != nil {
		return err
	}
	if c.Seq < 1 || c.Seq > t.head.seq {
		return fmt.Errorf("add checkpoint: seq %d is not in the chain (head is %d)", c.Seq, t.head.seq)
	}
	if c.Time.IsZero() {
		return fmt.Errorf("add checkpoint at seq %d: time is zero", c.Seq)
	}
	var hash string
	if err := t.tx.QueryRow("SELECT hash FROM events WHERE seq = ?", c.Seq).Scan(&hash); err != nil {
		return fmt.Errorf("add checkpoint at seq %d: %w", c.Seq, err)
	}
	if hash != c.HeadHash {
		return fmt.Errorf("add checkpoint at seq %d: head hash %q does not match the chain's %q", c.Seq, c.HeadHash, hash)
	}
	var cd codec
	ns := cd.nanos("time", c.Time)
	if cd.err != nil {
		return fmt.Errorf("add checkpoint at seq %d: %w", c.Seq, cd.err)
	}
	if _, err := t.exec("INSERT INTO checkpoints (seq, head_hash, time, signature, key) VALUES (?, ?, ?, ?, ?)",
		c.Seq, c.HeadHash, ns, c.Signature, c.Key); err != nil {
		return fmt.Errorf("add checkpoint at seq %d: %w", c.Seq, classify(err))
	}
	return nil
}

// Checkpoints returns every checkpoint in ascending Seq order.
func (s *Store) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	return checkpoints(ctx, db)
}

func checkpoints(ctx context.Context, q querier) ([]Checkpoint, error) {
	rows, err := q.QueryContext(ctx, "SELECT seq, head_hash, time, signature, key FROM checkpoints ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var c Checkpoint
		var ns int64
		if err := rows.Scan(&c.Seq, &c.HeadHash, &ns, &c.Signature, &c.Key); err != nil {
			return nil, fmt.Errorf("list checkpoints: %w", err)
		}
		c.Time = fromNanos(ns)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	return out, nil
}

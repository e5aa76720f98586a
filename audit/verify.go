package audit

import (
	"context"
	"fmt"
	"time"
)

// Checkpoint records the chain head at Seq, typically signed by the caller so
// that a later Verify can prove the log was neither rewritten nor truncated
// up to that point. This package only stores checkpoints; it never signs.
type Checkpoint struct {
	Seq       int64     // seq of the event whose hash is HeadHash
	HeadHash  string    // Event.Hash at Seq
	Time      time.Time // when the checkpoint was made (set by the caller)
	Signature []byte    // over whatever the caller's scheme defines
	Key       string    // identifies the signing key (e.g. its fingerprint)
}

// AddCheckpoint stores c. c.Seq must be an event already in the chain (as
// seen inside this transaction) and c.HeadHash its hash; a second checkpoint
// at the same Seq is ErrConflict.
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

// CheckpointVerifier checks a checkpoint's signature; a non-nil error marks
// the log as not verified.
type CheckpointVerifier func(c Checkpoint) error

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Checkpoint, if set, is called for every stored checkpoint. If nil,
	// signatures are not checked (head hashes and positions still are).
	Checkpoint CheckpointVerifier
}

// VerifyResult is the outcome of walking the chain.
type VerifyResult struct {
	Events   int64  // events that verified before the walk stopped
	Head     string // hash of the last verified event (GenesisHash if none)
	OK       bool   // the whole chain and every checkpoint verified
	FirstBad int64  // seq where the first problem was found (0 when OK)
	Problem  string // what was wrong at FirstBad (empty when OK)
}

// Verify walks the whole event chain from seq 1 and reports the first
// problem:
//   - a missing seq (a deleted row): FirstBad is the missing seq;
//   - prev_hash not equal to the previous event's hash (deleted or reordered
//     rows): FirstBad is the row whose link is broken;
//   - hash not equal to the recomputed hash (an edited row);
//   - a checkpoint whose head_hash differs from the chain's hash at its seq,
//     or whose signature opts.Checkpoint rejects: FirstBad is its seq;
//   - a chain that ends before the last checkpoint's seq (a truncated tail):
//     FirstBad is the first missing seq.
//
// Without checkpoints a truncated tail cannot be told from a shorter log.
// Tampering is reported in the result; the error is only for failures to
// read. At most one VerifyOptions may be given.
func (s *Store) Verify(ctx context.Context, opts ...VerifyOptions) (VerifyResult, error) {
	if len(opts) > 1 {
		return VerifyResult{}, fmt.Errorf("verify: %d options given, want at most 1", len(opts))
	}
	var opt VerifyOptions
	if len(opts) == 1 {
		opt = opts[0]
	}
	db, err := s.reader()
	if err != nil {
		return VerifyResult{}, err
	}
	// One read transaction, so checkpoints and events come from one snapshot.
	rtx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify: %w", err)
	}
	defer rtx.Rollback()
	cps, err := checkpoints(ctx, rtx)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify: %w", err)
	}
	res := VerifyResult{Head: GenesisHash}
	fail := func(seq int64, format string, args ...any) (VerifyResult, error) {
		res.FirstBad = seq
		res.Problem = fmt.Sprintf(format, args...)
		return res, nil
	}
	for _, c := range cps {
		if opt.Checkpoint == nil {
			break
		}
		if err := opt.Checkpoint(c); err != nil {
			return fail(c.Seq, "checkpoint at seq %d: signature: %v", c.Seq, err)
		}
	}

	rows, err := rtx.QueryContext(ctx, "SELECT "+eventColumns+" FROM events ORDER BY seq")
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify: %w", err)
	}
	defer rows.Close()
	next := 0 // index into cps of the next checkpoint to meet
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			// An undecodable data column is tampering, not an I/O failure.
			if e.Seq != 0 {
				return fail(e.Seq, "%v", err)
			}
			return VerifyResult{}, fmt.Errorf("verify: %w", err)
		}
		want := res.Events + 1
		if e.Seq != want {
			return fail(want, "event %d is missing (next stored event is %d)", want, e.Seq)
		}
		if e.PrevHash != res.Head {
			return fail(e.Seq, "event %d: prev_hash %q does not match the hash of event %d %q", e.Seq, e.PrevHash, e.Seq-1, res.Head)
		}
		h, err := ChainHash(e.PrevHash, e)
		if err != nil {
			return fail(e.Seq, "event %d: %v", e.Seq, err)
		}
		if h != e.Hash {
			return fail(e.Seq, "event %d: stored hash %q does not match its contents (%q)", e.Seq, e.Hash, h)
		}
		for next < len(cps) && cps[next].Seq == e.Seq {
			if cps[next].HeadHash != e.Hash {
				return fail(e.Seq, "checkpoint at seq %d: head hash %q does not match the chain's %q", e.Seq, cps[next].HeadHash, e.Hash)
			}
			next++
		}
		res.Events++
		res.Head = e.Hash
	}
	if err := rows.Err(); err != nil {
		return VerifyResult{}, fmt.Errorf("verify: %w", err)
	}
	if next < len(cps) {
		last := cps[len(cps)-1].Seq
		return fail(res.Events+1, "chain ends at seq %d but a checkpoint covers seq %d: events were removed from the tail", res.Events, last)
	}
	res.OK = true
	return res, nil
}

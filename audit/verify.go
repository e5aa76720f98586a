package audit

import (
	"context"
	"database/sql"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// VerifyOptions says what Verify checks beyond the chain itself.
type VerifyOptions struct {
	// CheckpointKey, if set, must have signed every stored checkpoint (see
	// CheckpointMessage). If nil, signatures are not checked; checkpoints'
	// positions and head hashes still are.
	CheckpointKey ssh.PublicKey
	// Recordings holds the recording files of finished sessions. With the
	// zero value no file can be read, so a finished session that has a
	// recording does not verify.
	Recordings Recordings
}

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	OK          bool   // the chain, every checkpoint and every finished session verified
	Events      int64  // events that verified before the walk stopped
	Head        string // hash of the last verified event (GenesisHash if none)
	FirstBad    int64  // seq where the first problem in the chain was found (0 if none)
	Problem     string // what was wrong (empty when OK)
	Checkpoints int    // checkpoints stored
	Recordings  int    // recording files checked (or found bad)
	BadSession  string // the session that did not verify, when the chain did
	// Lost lists, in the order they started, the finished sessions whose
	// recording was lost (end reason EndRecordingLost: jitd stopped while
	// they were live and their recording was gone when the end was
	// recorded). Each is a finding to report by name, not a failure: the
	// chain records the loss truthfully and nothing can restore it, so a
	// failure would fail every verify after it.
	Lost []string
}

// Verify checks, in one read snapshot, everything the audit store vouches
// for, and reports the first problem. First the event chain from seq 1:
//   - a checkpoint whose signature is not CheckpointKey's: FirstBad is its
//     seq (checked before the walk, so Events is 0);
//   - a missing seq (a deleted row): FirstBad is the missing seq;
//   - prev_hash not equal to the previous event's hash (deleted or reordered
//     rows): FirstBad is the row whose link is broken;
//   - hash not equal to the recomputed hash (an edited row);
//   - a checkpoint whose head_hash differs from the chain's hash at its seq:
//     FirstBad is its seq;
//   - a chain that ends before the last checkpoint's seq (a truncated tail):
//     FirstBad is the first missing seq.
//
// Without checkpoints a truncated tail cannot be told from a shorter log.
// If the chain verifies, the sessions, in the order they started: a finished
// session must have a session.end event in the chain whose facts (exit
// status, byte counts, end reason, recording digest and size) its row
// matches, and its recording file in opts.Recordings must have that digest
// and size; a session.end event must belong to a finished row. The first
// session that does not verify is BadSession. Sessions not yet finished are
// not checked; a finished session whose recording was lost is listed in
// Lost. Tampering is reported in the result; the error is only for
// failures to read the store. At most one VerifyOptions may be given.
func (s *Store) Verify(ctx context.Context, opts ...VerifyOptions) (VerifyResult, error) {
	if len(opts) > 1 {
		return VerifyResult{}, fmt.Errorf("verify: %d options given, want at most 1", len(opts))
	}
	v := verification{res: VerifyResult{Head: GenesisHash}, ends: map[string]chainedEnd{}}
	if len(opts) == 1 {
		v.opt = opts[0]
	}
	db, err := s.reader()
	if err != nil {
		return VerifyResult{}, err
	}
	// One read transaction, so checkpoints, events and sessions come from
	// one snapshot.
	rtx, err := db.BeginTx(ctx, s.snapshot())
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify: %w", err)
	}
	defer rtx.Rollback()
	if err := v.chain(ctx, rtx); err != nil {
		return VerifyResult{}, fmt.Errorf("verify: %w", err)
	}
	if v.res.Problem == "" {
		if err := v.sessions(ctx, rtx); err != nil {
			return VerifyResult{}, fmt.Errorf("verify: %w", err)
		}
	}
	v.res.OK = v.res.Problem == ""
	return v.res, nil
}

// verification is the state of one Verify call.
type verification struct {
	opt  VerifyOptions
	res  VerifyResult
	ends map[string]chainedEnd // session.end events by session id
}

// failAt records a problem in the chain at seq.
func (v *verification) failAt(seq int64, format string, args ...any) {
	v.res.FirstBad = seq
	v.res.Problem = fmt.Sprintf(format, args...)
}

// chain walks the checkpoints and the events; a problem is left in v.res.
func (v *verification) chain(ctx context.Context, rtx *sql.Tx) error {
	cps, err := checkpoints(ctx, rtx)
	if err != nil {
		return err
	}
	v.res.Checkpoints = len(cps)
	for _, c := range cps {
		if v.opt.CheckpointKey == nil {
			break
		}
		if err := checkSignature(c, v.opt.CheckpointKey); err != nil {
			v.failAt(c.Seq, "checkpoint at seq %d: signature: %v", c.Seq, err)
			return nil
		}
	}
	rows, err := rtx.QueryContext(ctx, "SELECT "+eventColumns+" FROM events ORDER BY seq")
	if err != nil {
		return err
	}
	defer rows.Close()
	next := 0 // index into cps of the next checkpoint to meet
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			// An undecodable data column is tampering, not an I/O failure.
			if e.Seq != 0 {
				v.failAt(e.Seq, "%v", err)
				return nil
			}
			return err
		}
		if !v.event(e) {
			return nil
		}
		for ; next < len(cps) && cps[next].Seq == e.Seq; next++ {
			if cps[next].HeadHash != e.Hash {
				v.failAt(e.Seq, "checkpoint at seq %d: head hash %q does not match the chain's %q", e.Seq, cps[next].HeadHash, e.Hash)
				return nil
			}
		}
		v.res.Events++
		v.res.Head = e.Hash
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if next < len(cps) {
		v.failAt(v.res.Events+1, "chain ends at seq %d but a checkpoint covers seq %d: events were removed from the tail",
			v.res.Events, cps[len(cps)-1].Seq)
	}
	return nil
}

// event checks e's place and hash in the chain, and keeps what a
// session.end event says for the sessions' check.
func (v *verification) event(e Event) bool {
	want := v.res.Events + 1
	if e.Seq != want {
		v.failAt(want, "event %d is missing (next stored event is %d)", want, e.Seq)
		return false
	}
	if e.PrevHash != v.res.Head {
		v.failAt(e.Seq, "event %d: prev_hash %q does not match the hash of event %d %q", e.Seq, e.PrevHash, e.Seq-1, v.res.Head)
		return false
	}
	h, err := ChainHash(e.PrevHash, e)
	if err != nil {
		v.failAt(e.Seq, "event %d: %v", e.Seq, err)
		return false
	}
	if h != e.Hash {
		v.failAt(e.Seq, "event %d: stored hash %q does not match its contents (%q)", e.Seq, e.Hash, h)
		return false
	}
	if e.Type == eventSessionEnd {
		end, err := sessionEndOf(e)
		v.ends[e.SessionID] = chainedEnd{seq: e.Seq, end: end, err: err}
	}
	return true
}

// failSession records a problem of session id.
func (v *verification) failSession(id, problem string) {
	v.res.BadSession, v.res.Problem = id, problem
}

// sessions checks every session row, in the order they started, against the
// session.end events the chain walk kept; a problem is left in v.res.
func (v *verification) sessions(ctx context.Context, rtx *sql.Tx) error {
	rows, err := rtx.QueryContext(ctx, "SELECT "+sessionColumns+" FROM sessions ORDER BY started_at, id")
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		if problem := v.session(x); problem != "" {
			v.failSession(x.ID, problem)
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	// What is left are ends of sessions that have no row; name the first.
	var orphan string
	for id, c := range v.ends {
		if orphan == "" || c.seq < v.ends[orphan].seq {
			orphan = id
		}
	}
	if orphan != "" {
		v.failSession(orphan, fmt.Sprintf("session %s: the audit chain (event %d) records its end but the sessions table has no row for it",
			orphan, v.ends[orphan].seq))
	}
	return nil
}

// session checks one row and returns what is wrong ("" when nothing is).
func (v *verification) session(x Session) string {
	c, chained := v.ends[x.ID]
	delete(v.ends, x.ID)
	if x.EndedAt.IsZero() {
		if chained {
			return fmt.Sprintf("session %s: the audit chain (event %d) records its end but its row says it is live", x.ID, c.seq)
		}
		return ""
	}
	if !chained {
		return fmt.Sprintf("session %s ended but the audit chain has no session.end event for it", x.ID)
	}
	if problem := checkSessionRow(x, c); problem != "" {
		return problem
	}
	if x.RecordingPath == "" {
		if x.EndReason == EndRecordingLost {
			v.res.Lost = append(v.res.Lost, x.ID)
		}
		return ""
	}
	v.res.Recordings++
	return v.opt.Recordings.check(x.ID, x.RecordingPath, c.end)
}

package audit

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// End reasons of sessions whose jitd stopped while they were live (kill -9,
// power loss), recorded by the replica that owned them when it starts
// again, or by jitd replica forget for one that never does.
const (
	// EndJitdStopped: the recording as it stood when jitd stopped is the
	// session's recording; its digest is that of the file as stored.
	EndJitdStopped = "jitd_stopped"
	// EndRecordingLost: the recording was gone (its spool file removed, or
	// its replica forgotten with nothing in the object store). The row
	// names no file; Verify lists the session in VerifyResult.Lost.
	EndRecordingLost = "recording_lost"
)

// ErrReplicaUp is ForgetReplica's refusal of a replica that beat within
// the freshness window.
var ErrReplicaUp = errors.New("audit: the replica is up")

// ForgetReplica removes replica id's row from the registry if its last
// beat, by the database's clock, is older than fresh (or it stopped
// cleanly); a replica that beat within fresh is ErrReplicaUp and an unknown
// id ErrNotFound. The check and the removal are one statement, so a replica
// that comes back meanwhile is never removed.
func (t *Tx) ForgetReplica(id string, fresh time.Duration) error {
	if err := t.check(); err != nil {
		return err
	}
	now := t.engine.dbNowSQL()
	res, err := t.exec("DELETE FROM replicas WHERE id = ? AND (heartbeat_at = 0 OR heartbeat_at <= "+now+" - ?)", id, int64(fresh))
	if err != nil {
		return fmt.Errorf("forget replica %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		if err != nil {
			return fmt.Errorf("forget replica %q: %w", id, err)
		}
		return nil
	}
	var age int64
	switch err := t.tx.QueryRow("SELECT "+now+" - heartbeat_at FROM replicas WHERE id = ?", id).Scan(&age); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("forget replica %q: %w", id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("forget replica %q: %w", id, err)
	}
	return fmt.Errorf("forget replica %q: it beat %s ago, within %s: %w", id, time.Duration(age).Round(time.Millisecond), fresh, ErrReplicaUp)
}

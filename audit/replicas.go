package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Replica is one jitd process's entry in the registry: its lasting
// identity (ID, kept in its data directory), where the others reach its API
// and engineers its bastion, the random Instance of the process that now
// runs as it, and its last heartbeat by the database's clock.
type Replica struct {
	ID           string
	AdvertiseURL string // https://HOST:PORT of its API
	BastionAddr  string // HOST:PORT engineers dial, empty without a bastion
	Instance     string // random per process
	Version      string
	PolicySHA256 string // hex SHA-256 of the policy file in force
	StartedAt    time.Time
	HeartbeatAt  time.Time // zero once it stopped cleanly
}

// ErrTwin is Heartbeat's refusal: another instance of the same replica ID
// beat within the freshness window.
var ErrTwin = errors.New("audit: another process runs as this replica")

// Heartbeat records r as alive now, by the database's clock. The first beat of an
// instance (a new process) takes the ID over only if the row's instance
// is r.Instance or its last beat is older than fresh: otherwise another
// process runs as this replica (a copied data directory), and Heartbeat
// returns ErrTwin naming it and writes nothing. StartedAt is set when the
// instance changes; r.StartedAt and r.HeartbeatAt are ignored.
func (t *Tx) Heartbeat(r Replica, fresh time.Duration) error {
	if err := t.check(); err != nil {
		return err
	}
	if r.ID == "" || r.Instance == "" {
		return fmt.Errorf("heartbeat of replica %q instance %q: id and instance are required", r.ID, r.Instance)
	}
	now := t.engine.dbNowSQL()
	var got string
	err := t.tx.QueryRow(`INSERT INTO replicas (id, advertise_url, bastion_addr, instance, version, policy_sha256, started_at, heartbeat_at)
		VALUES (?, ?, ?, ?, ?, ?, `+now+`, `+now+`)
		ON CONFLICT (id) DO UPDATE SET advertise_url = excluded.advertise_url, bastion_addr = excluded.bastion_addr,
			version = excluded.version, policy_sha256 = excluded.policy_sha256,
			started_at = CASE WHEN replicas.instance = excluded.instance THEN replicas.started_at ELSE excluded.started_at END,
			instance = excluded.instance, heartbeat_at = excluded.heartbeat_at
		WHERE replicas.instance = excluded.instance OR replicas.heartbeat_at <= `+now+` - ?
		RETURNING instance`, r.ID, r.AdvertiseURL, r.BastionAddr, r.Instance, r.Version, r.PolicySHA256, int64(fresh)).Scan(&got)
	if err == nil && got == r.Instance {
		return nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("heartbeat of replica %q: %w", r.ID, err)
	}
	var other string
	var age int64
	if err := t.tx.QueryRow("SELECT instance, "+now+" - heartbeat_at FROM replicas WHERE id = ?", r.ID).Scan(&other, &age); err != nil {
		return fmt.Errorf("heartbeat of replica %q: %w", r.ID, err)
	}
	return fmt.Errorf("%w: replica %q: instance %s beat %s ago (within %s)", ErrTwin, r.ID, other, time.Duration(age).Round(time.Millisecond), fresh)
}

// RetireReplica marks the replica's row stopped (heartbeat zero) if
// instance still runs as it, so that the others see it down at once and a
// restart need not wait out the freshness window.
func (t *Tx) RetireReplica(id, instance string) error {
	if err := t.check(); err != nil {
		return err
	}
	if _, err := t.exec("UPDATE replicas SET heartbeat_at = 0 WHERE id = ? AND instance = ?", id, instance); err != nil {
		return fmt.Errorf("retire replica %q: %w", id, err)
	}
	return nil
}

// Replicas returns the registry, by ID, and the database's clock read
// just before, to tell each beat's age by.
func (s *Store) Replicas(ctx context.Context) ([]Replica, time.Time, error) {
	db, err := s.reader()
	if err != nil {
		return nil, time.Time{}, err
	}
	now, err := s.DBNow(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	rows, err := db.QueryContext(ctx, `SELECT id, advertise_url, bastion_addr, instance, version, policy_sha256, started_at, heartbeat_at
		FROM replicas ORDER BY id`)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("replicas: %w", err)
	}
	defer rows.Close()
	var out []Replica
	for rows.Next() {
		var r Replica
		var started, beat int64
		if err := rows.Scan(&r.ID, &r.AdvertiseURL, &r.BastionAddr, &r.Instance, &r.Version, &r.PolicySHA256, &started, &beat); err != nil {
			return nil, time.Time{}, fmt.Errorf("replicas: %w", err)
		}
		r.StartedAt, r.HeartbeatAt = fromNanos(started), fromNanos(beat)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("replicas: %w", err)
	}
	return out, now, nil
}

// Replica returns the registry's row of id, with the database's clock
// read in the same query, or ErrNotFound: one row, since the watch proxy
// asks on every request.
func (s *Store) Replica(ctx context.Context, id string) (Replica, time.Time, error) {
	db, err := s.reader()
	if err != nil {
		return Replica{}, time.Time{}, err
	}
	var r Replica
	var started, beat, now int64
	err = db.QueryRowContext(ctx, `SELECT id, advertise_url, bastion_addr, instance, version, policy_sha256, started_at, heartbeat_at, `+
		s.engine.dbNowSQL()+` FROM replicas WHERE id = ?`, id).
		Scan(&r.ID, &r.AdvertiseURL, &r.BastionAddr, &r.Instance, &r.Version, &r.PolicySHA256, &started, &beat, &now)
	if errors.Is(err, sql.ErrNoRows) {
		return Replica{}, time.Time{}, fmt.Errorf("replica %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Replica{}, time.Time{}, fmt.Errorf("replica %q: %w", id, err)
	}
	r.StartedAt, r.HeartbeatAt = fromNanos(started), fromNanos(beat)
	return r, fromNanos(now), nil
}

// PruneReplicas deletes the registry rows of replicas down for more than
// downFor by the database's clock: last beat that long ago, or stopped
// cleanly (no beat) having started that long ago. A replica ID made at
// random by a data directory since thrown away would otherwise stay
// forever; one that comes back registers again. It returns how many rows
// went.
func (t *Tx) PruneReplicas(downFor time.Duration) (int64, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	if downFor <= 0 {
		return 0, fmt.Errorf("prune replicas down for %s: not positive", downFor)
	}
	now := t.engine.dbNowSQL()
	res, err := t.exec(`DELETE FROM replicas WHERE (heartbeat_at <> 0 AND heartbeat_at < `+now+` - ?)
		OR (heartbeat_at = 0 AND started_at < `+now+` - ?)`, int64(downFor), int64(downFor))
	if err != nil {
		return 0, fmt.Errorf("prune replicas: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// LiveSessionReplicas returns the replicas whose bastions, by the session
// rows, have a session of request requestID live (one entry per session;
// empty for sessions from before replicas). A replica that died keeps its
// rows live until it restarts: callers weigh them by the registry.
func (s *Store) LiveSessionReplicas(ctx context.Context, requestID string) ([]string, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT replica FROM sessions WHERE request_id = ? AND ended_at = 0 ORDER BY id", requestID)
	if err != nil {
		return nil, fmt.Errorf("live sessions of request %s: %w", requestID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("live sessions of request %s: %w", requestID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("live sessions of request %s: %w", requestID, err)
	}
	return out, nil
}

package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/livepolicy"
)

// ReloadReport is what a reload changed in the policy in force: users,
// hosts and roles added, removed or changed, by name.
type ReloadReport = livepolicy.Change

// Reload re-reads the policy file and the enrolled users, for the operator
// on the daemon's host (cmd/jitd calls it on SIGHUP), and reports what
// changed. A bad file leaves the last good policy in force and is an error
// naming file and line. Either way the reload is audited as policy.reload,
// ok (with the change as its message) or failed, with actor SIGHUP, by
// grant.Admin, the same path as the API's reload. The record, which names
// this instance, makes every other replica on the store reload its own
// file too (feed.go).
func (d *Daemon) Reload(ctx context.Context) (ReloadReport, error) {
	change, err := d.admin.ReloadPolicy(ctx, grant.Caller{User: "SIGHUP"})
	var ge *grant.Error
	if errors.As(err, &ge) && ge.Err != nil {
		err = ge.Err // the file's own error, naming file and line, is what the operator needs
	}
	if err != nil {
		return change, fmt.Errorf("reload policy: %w", err)
	}
	return change, nil
}

// usersBackstop is how often the enrolled users, identities and hosts are
// re-read without the change feed asking (feed.go refreshes as each change
// commits; this is its backstop).
const usersBackstop = 30 * time.Second

// housekeeping re-reads users enrolled by another process (jitd user add,
// another replica) on every replica as the feed's backstop and, on the one
// replica that holds the housekeeping lease, expires overdue requests,
// reaps idempotency keys and expired login challenges and SSO flows, and
// signs the chain head every minute, until ctx is done. A replica that
// gains the lease signs a minute after it gained it, so that two holders
// in turn never sign more often than the period.
func (d *Daemon) housekeeping(ctx context.Context) {
	tick := time.NewTicker(min(5*time.Second, d.replica.beat))
	defer tick.Stop()
	every := cmp.Or(d.cfg.checkpointEvery, defaultCheckpoint)
	var lastCheckpoint time.Time // zero: the lease is not ours
	lastRefresh := time.Now()
	var lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(lastRefresh) >= usersBackstop {
			if err := d.policy.RefreshUsers(ctx); err != nil {
				d.log.Warn("refresh enrolled users", "err", err)
			}
			lastRefresh = time.Now()
		}
		if !d.replica.holds() {
			lastCheckpoint = time.Time{}
			continue
		}
		if lastCheckpoint.IsZero() {
			lastCheckpoint = time.Now()
		}
		d.sweep(ctx)
		if time.Since(lastPrune) >= pruneEvery {
			d.pruneRegistry(ctx)
			lastPrune = time.Now()
		}
		// Measured on the monotonic clock: Config.Clock may be a test's
		// fixed time, and the lease is counted on the monotonic clock too.
		if time.Since(lastCheckpoint) >= every && d.replica.holds() {
			if _, err := d.store.SignCheckpoint(ctx, d.checkpointKey, d.cfg.Clock()); err != nil {
				d.log.Warn("checkpoint", "err", err)
			}
			lastCheckpoint = time.Now()
		}
	}
}

// sweep is the lease holder's share of housekeeping: work that every
// replica could do, but one is enough.
func (d *Daemon) sweep(ctx context.Context) {
	if n, err := d.grants.ExpireDue(ctx); err != nil {
		d.log.Warn("expire requests", "err", err)
	} else if n > 0 {
		d.log.Info("requests expired", "count", n)
	}
	if _, err := d.grants.ReapIdempotencyKeys(ctx); err != nil {
		d.log.Warn("reap idempotency keys", "err", err)
	}
	if _, err := d.grants.ReapLoginFlows(ctx); err != nil {
		d.log.Warn("reap login challenges and sso flows", "err", err)
	}
}

// pruneEvery is how often the housekeeping lease's holder prunes the
// registry and the leases: their rows grow slowly.
const pruneEvery = 10 * time.Minute

// replicaPruneAfter is how long a replica may be down before its registry
// row is deleted (a random ID of a data directory thrown away would stay
// forever); one that comes back registers again.
const replicaPruneAfter = 7 * 24 * time.Hour

// pruneRegistry deletes the rows of replicas long down and the expired
// leases (one per account and per caught-up session would pile up).
func (d *Daemon) pruneRegistry(ctx context.Context) {
	var reps, leases int64
	err := d.store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		if reps, err = tx.PruneReplicas(replicaPruneAfter); err != nil {
			return err
		}
		leases, err = tx.PruneLeases()
		return err
	})
	if err != nil {
		d.log.Warn("prune replica registry and leases", "err", err)
		return
	}
	if reps > 0 || leases > 0 {
		d.log.Info("pruned replica registry and leases", "replicas", reps, "leases", leases)
	}
}

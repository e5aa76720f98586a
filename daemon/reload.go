package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// usersBackstopTicks is how many housekeeping ticks (5s) apart the
// enrolled users, identities and hosts are re-read without the feed
// asking: 30s.
const usersBackstopTicks = 6

// housekeeping expires overdue requests, picks up users enrolled by another
// process (jitd user add) and signs the chain head every minute, until ctx
// is done.
func (d *Daemon) housekeeping(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastCheckpoint := d.cfg.Clock()
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
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
		// The change feed refreshes as each change commits (feed.go); this
		// is its backstop, every usersBackstopTicks ticks.
		if ticks++; ticks%usersBackstopTicks == 0 {
			if err := d.policy.RefreshUsers(ctx); err != nil {
				d.log.Warn("refresh enrolled users", "err", err)
			}
		}
		if d.cfg.Clock().Sub(lastCheckpoint) >= time.Minute {
			if _, err := d.store.SignCheckpoint(ctx, d.checkpointKey, d.cfg.Clock()); err != nil {
				d.log.Warn("checkpoint", "err", err)
			}
			lastCheckpoint = d.cfg.Clock()
		}
	}
}

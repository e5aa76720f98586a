package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/livepolicy"
)

// ReloadReport is what a reload changed in the policy in force: users,
// hosts and roles added, removed or changed, by name.
type ReloadReport = livepolicy.Change

// Reload re-reads the policy file and the enrolled users, for the operator
// on the daemon's host (cmd/jitd calls it on SIGHUP), and reports what
// changed. A bad file leaves the last good policy in force and is an error
// naming file and line. Either way the reload is audited as policy.reload,
// ok (with the change as its message) or failed, with actor SIGHUP.
func (d *Daemon) Reload(ctx context.Context) (ReloadReport, error) {
	change, err := d.policy.ReloadChange(ctx)
	e := audit.Event{Time: d.cfg.Clock().UTC(), Type: "policy.reload", Code: "ok", Actor: "SIGHUP", Message: change.String()}
	if err != nil {
		e.Code, e.Message = "failed", err.Error()
	}
	if aerr := appendEvent(ctx, d.store, e); aerr != nil {
		d.log.Warn("audit policy reload", "err", aerr)
	}
	if err != nil {
		return change, fmt.Errorf("reload policy: %w", err)
	}
	return change, nil
}

// housekeeping expires overdue requests, picks up users enrolled by another
// process (jitd user add) and signs the chain head every minute, until ctx
// is done.
func (d *Daemon) housekeeping(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastCheckpoint := d.cfg.Clock()
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
		if err := d.policy.RefreshUsers(ctx); err != nil {
			d.log.Warn("refresh enrolled users", "err", err)
		}
		if d.cfg.Clock().Sub(lastCheckpoint) >= time.Minute {
			if _, err := d.store.SignCheckpoint(ctx, d.checkpointKey, d.cfg.Clock()); err != nil {
				d.log.Warn("checkpoint", "err", err)
			}
			lastCheckpoint = d.cfg.Clock()
		}
	}
}

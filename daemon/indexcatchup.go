package daemon

import (
	"context"

	"github.com/jitssh/jitssh/audit"
)

// finishIndexing finishes the search index catch-ups an earlier run left
// (a session whose index fell behind ended, or jitd stopped, before its
// catch-up was done), one after the other, reading each recording back
// from the stored position. A failure is logged and the position kept, so
// the next start tries again.
func (d *Daemon) finishIndexing(ctx context.Context) {
	for _, p := range d.pendingIndex {
		if ctx.Err() != nil {
			return
		}
		if p.RecordingPath == "" {
			d.log.Warn("search index catch-up: the session has no recording", "session", p.SessionID, "from_line", p.NextLine)
			continue
		}
		d.catchUp(ctx, p)
	}
}

// catchUp does one catch-up; that of another replica's (or an unknown
// one's) ended session holds a lease on it, since every replica that
// starts while its owner is down may list it.
func (d *Daemon) catchUp(ctx context.Context, p audit.PendingIndex) {
	if p.Replica != d.replica.id {
		release, err := d.exclusive(ctx, "index:"+p.SessionID)
		if err != nil {
			d.log.Warn("search index catch-up: lease", "session", p.SessionID, "err", err)
			return
		}
		defer release()
	}
	d.log.Info("search index catch-up", "session", p.SessionID, "from_line", p.NextLine, "replica", p.Replica)
	if err := d.bastion.CatchUpIndex(ctx, p.SessionID, p.RecordingPath, p.NextLine); err != nil {
		d.log.Warn("search index catch-up", "session", p.SessionID, "from_line", p.NextLine, "err", err)
	}
}

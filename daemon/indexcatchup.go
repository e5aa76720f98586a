package daemon

import (
	"context"
	"errors"

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

// catchUp does one catch-up under the session's lease, whoever recorded
// it: every replica that starts while the session's replica is down may
// list it, and so may that replica's own next start. The position is read
// again under the lease (another replica may have finished or moved it
// since it was listed: a catch-up from a stale position would index its
// lines twice), and the work stops if the lease is lost.
func (d *Daemon) catchUp(ctx context.Context, listed audit.PendingIndex) {
	id := listed.SessionID
	held, release, err := d.exclusive(ctx, "index:"+id)
	if err != nil {
		d.log.Warn("search index catch-up: lease", "session", id, "err", err)
		return
	}
	defer release()
	p, err := d.store.PendingIndexOf(held, id)
	if errors.Is(err, audit.ErrNotFound) {
		d.log.Info("search index catch-up: done by another replica", "session", id)
		return
	}
	if err != nil {
		d.log.Warn("search index catch-up: read position", "session", id, "err", err)
		return
	}
	d.log.Info("search index catch-up", "session", id, "from_line", p.NextLine, "replica", p.Replica)
	if err := d.bastion.CatchUpIndex(held, id, p.RecordingPath, p.NextLine); err != nil {
		d.log.Warn("search index catch-up", "session", id, "from_line", p.NextLine, "err", err)
	}
}

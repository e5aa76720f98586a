package daemon

import (
	"context"
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
		d.log.Info("search index catch-up", "session", p.SessionID, "from_line", p.NextLine)
		if err := d.bastion.CatchUpIndex(ctx, p.SessionID, p.RecordingPath, p.NextLine); err != nil {
			d.log.Warn("search index catch-up", "session", p.SessionID, "from_line", p.NextLine, "err", err)
		}
	}
}

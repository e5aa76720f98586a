package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/recstore"
)

// openRecordings opens the recordings store of cfg over the data
// directory's recordings directory (the spool), with the audit store
// saying what the chain recorded of recordings an earlier run left.
func (d *Daemon) openRecordings() error {
	l := Layout{Dir: d.cfg.Dir}
	recs, err := recstore.Open(recstore.Config{
		Location: d.cfg.Recordings, S3: d.cfg.S3, Spool: l.Recordings(),
		Lookup: d.recordingEnd, Logger: d.log.With("component", "recordings"),
	})
	if err != nil {
		return fmt.Errorf("recordings store %s: %w", d.cfg.Recordings, err)
	}
	d.recs = recs
	return nil
}

// recordingsFS is what the API's readers and verify read recordings
// through: rows' names (and older rows' absolute paths under the spool)
// resolved in the spool, then the object store.
func (d *Daemon) recordingsFS() audit.Recordings {
	return audit.Recordings{Dir: Layout{Dir: d.cfg.Dir}.Recordings(), FS: d.recs.FS()}
}

// openRecording opens a row's recording for the search index catch-up.
func (d *Daemon) openRecording(p string) (io.ReadCloser, error) {
	return d.recordingsFS().Open(p)
}

// recordingEnd finds the session whose recording is name (its file name is
// the session ID) and returns what its session.end recorded.
func (d *Daemon) recordingEnd(ctx context.Context, name string) (recstore.SessionEnd, bool, error) {
	id := strings.TrimSuffix(strings.TrimSuffix(path.Base(name), ".zst"), ".cast")
	x, err := d.store.Session(ctx, id)
	if errors.Is(err, audit.ErrNotFound) {
		return recstore.SessionEnd{}, false, nil
	}
	if err != nil {
		return recstore.SessionEnd{}, false, err
	}
	if x.EndedAt.IsZero() && x.Replica != "" && x.Replica != d.replica.id {
		// Live on another replica, by its row: that replica's spool holds
		// the growing recording; this file must not end it with its own
		// digest. Kept and retried until the row ends.
		return recstore.SessionEnd{}, false, fmt.Errorf("session %s is live on replica %s, not this one (%s)", id, x.Replica, d.replica.id)
	}
	if d.recs.Name(x.RecordingPath) != name {
		// Another file than the row's: uploaded with its own digest.
		return recstore.SessionEnd{}, false, nil
	}
	return recstore.SessionEnd{Ended: !x.EndedAt.IsZero(), SHA256: x.RecordingSHA256, Size: x.RecordingSize}, true, nil
}

// closeRecordings lets the uploads of ended recordings finish, within the
// shutdown timeout; what is left is uploaded at the next start.
func (d *Daemon) closeRecordings() {
	if d.recs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(d.cfg.ShutdownTimeout, defaultShutdownTimeout))
	defer cancel()
	d.recs.Close(ctx)
}

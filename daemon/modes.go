package daemon

import (
	"context"
	"fmt"

	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/strictmodes"
)

// CheckModes refuses a data directory that someone other than jitd's user
// (or root) could change, as sshd's StrictModes does: the directory and
// every directory above it, the policy file, the database and its -wal and
// -shm, the recordings, ca/ and tls/ directories. The error names the path
// and the command that fixes it. jitd serve, jitd user add and jitd host
// certify call it before they trust anything in the directory; the key
// files themselves are checked by ca when loaded.
func (l Layout) CheckModes() error {
	db := l.Database()
	// Absent entries are left to the code that needs them, whose errors
	// say more ("run jitd init first").
	var entries []strictmodes.Entry
	for _, e := range []struct{ path, what string }{
		{l.Dir, "data directory"},
		{l.PolicyFile(), "policy file"},
		{l.Recordings(), "recordings directory"},
		{l.CADir(), "CA directory"},
		{l.TLSDir(), "TLS directory"},
	} {
		entries = append(entries, strictmodes.Entry{Path: e.path, What: e.what, Optional: true})
	}
	if l.Store == "" { // the database is a file here, not a server's
		for _, e := range []struct{ path, what string }{
			{db, "database"}, {db + "-wal", "database WAL"}, {db + "-shm", "database shared memory"},
		} {
			entries = append(entries, strictmodes.Entry{Path: e.path, What: e.what, Optional: true})
		}
	}
	err := strictmodes.ForProcess().Check(entries...)
	if err != nil {
		return fmt.Errorf("refusing data directory %s: %w", l.Dir, err)
	}
	return nil
}

// modeCheckedReloader checks the data directory's modes again before each
// policy reload (SIGHUP and jit admin reload alike): a policy file made
// writable by others after start is refused, audited as a failed reload by
// grant.Admin, and the last good policy stays in force.
type modeCheckedReloader struct {
	*livepolicy.Holder
	layout Layout
	loaded func() // after a reload that succeeded (the replica's policy digest)
}

// ReloadChange refuses loose modes, then reloads.
func (r modeCheckedReloader) ReloadChange(ctx context.Context) (livepolicy.Change, error) {
	if err := r.layout.CheckModes(); err != nil {
		return livepolicy.Change{}, err
	}
	change, err := r.Holder.ReloadChange(ctx)
	if err == nil && r.loaded != nil {
		r.loaded()
	}
	return change, err
}

package daemon

import (
	"fmt"

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
	err := strictmodes.ForProcess().Check(
		strictmodes.Entry{Path: l.Dir, What: "data directory"},
		strictmodes.Entry{Path: l.PolicyFile(), What: "policy file"},
		strictmodes.Entry{Path: db, What: "database"},
		strictmodes.Entry{Path: db + "-wal", What: "database WAL", Optional: true},
		strictmodes.Entry{Path: db + "-shm", What: "database shared memory", Optional: true},
		strictmodes.Entry{Path: l.Recordings(), What: "recordings directory"},
		strictmodes.Entry{Path: l.CADir(), What: "CA directory"},
		strictmodes.Entry{Path: l.TLSDir(), What: "TLS directory"},
	)
	if err != nil {
		return fmt.Errorf("refusing data directory %s: %w", l.Dir, err)
	}
	return nil
}

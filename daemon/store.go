package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
)

// StoreTarget is what the audit store is opened from: the --store URL, or
// the SQLite file in the data directory.
func (l Layout) StoreTarget() string {
	if l.Store != "" {
		return l.Store
	}
	return l.Database()
}

// OpenStore opens l's audit store, applying pending migrations (on
// PostgreSQL one process at a time; the others wait).
func (l Layout) OpenStore(ctx context.Context) (*audit.Store, error) {
	if l.Store != "" && !audit.IsPostgresURL(l.Store) {
		return nil, fmt.Errorf("--store %q: want a postgres:// or postgresql:// URL (leave it empty for the SQLite file in the data directory)", l.Store)
	}
	return audit.OpenURL(ctx, l.StoreTarget(), audit.Options{})
}

// Migrate applies the pending schema migrations of l's store and closes it:
// jitd migrate, run before starting new replicas.
func (l Layout) Migrate(ctx context.Context) error {
	store, err := l.OpenStore(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// CopyStore copies the SQLite store from (a data directory, or the
// database file itself) into the empty PostgreSQL store at to, then checks
// with Verify, reading recordings from the data directory, that the copy
// holds the same verified chain as the source: jitd store copy.
func CopyStore(ctx context.Context, from, to string) (audit.CopyResult, audit.VerifyResult, error) {
	file, dir := from, filepath.Dir(from)
	if st, err := os.Stat(from); err != nil {
		return audit.CopyResult{}, audit.VerifyResult{}, fmt.Errorf("copy store from %s: %w", from, err)
	} else if st.IsDir() {
		file, dir = Layout{Dir: from}.Database(), from
		if _, err := os.Stat(file); err != nil {
			return audit.CopyResult{}, audit.VerifyResult{}, fmt.Errorf("copy store from %s: no database: %w", from, err)
		}
	}
	if !audit.IsPostgresURL(to) {
		return audit.CopyResult{}, audit.VerifyResult{}, fmt.Errorf("copy store: --to %q is not a postgres:// URL", to)
	}
	src, err := audit.Open(file)
	if err != nil {
		return audit.CopyResult{}, audit.VerifyResult{}, err
	}
	defer src.Close()
	dst, err := audit.OpenURL(ctx, to, audit.Options{})
	if err != nil {
		return audit.CopyResult{}, audit.VerifyResult{}, err
	}
	defer dst.Close()
	res, err := audit.Copy(ctx, src, dst)
	if err != nil {
		return res, audit.VerifyResult{}, err
	}
	opts := audit.VerifyOptions{Recordings: recordingsOf(Layout{Dir: dir})}
	// The checkpoints' signatures are checked when the data directory has
	// the key (a bare database file copied elsewhere may not).
	if key, err := ca.LoadSigner(Layout{Dir: dir}.CheckpointKey()); err == nil {
		opts.CheckpointKey = key.PublicKey()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, audit.VerifyResult{}, fmt.Errorf("verify the copy: checkpoint key: %w", err)
	}
	vr, err := dst.Verify(ctx, opts)
	if err != nil {
		return res, vr, fmt.Errorf("verify the copy: %w", err)
	}
	if !vr.OK || vr.Head != res.Head || vr.Events != res.Events {
		return res, vr, fmt.Errorf("the copy does not verify: %s (event %d)", vr.Problem, vr.FirstBad)
	}
	return res, vr, nil
}

// recordingsOf is the recordings directory of l for Verify; a missing one
// is the zero value, so sessions with recordings do not verify.
func recordingsOf(l Layout) audit.Recordings {
	if st, err := os.Stat(l.Recordings()); err == nil && st.IsDir() {
		return audit.DirRecordings(l.Recordings())
	}
	return audit.Recordings{}
}

// RedactedURL is a store URL without its password, for messages.
func RedactedURL(u string) string {
	return audit.RedactURL(u)
}

package hostjoin

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jitssh/jitssh/atomicfile"
)

// State says what a switch does, or would do, to one file.
type State string

// The states of a file in a plan.
const (
	Created   State = "created"
	Changed   State = "changed"
	Unchanged State = "unchanged"
)

// File is one file of the installation: its full path (under the root),
// content and mode, or, with Link set, a symbolic link to Link.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
	Link string
	// Unknown marks content that only jitd can give (a dry run of a join
	// does not spend its single-use token): the state is Created or Changed.
	Unknown bool
}

// Change is the state of one file in a plan or after a switch.
type Change struct {
	Path  string `json:"path"`
	State State  `json:"state"`
}

// Plan returns what a switch to files would do, changing nothing.
func Plan(files []File) ([]Change, error) {
	out := make([]Change, 0, len(files))
	for _, f := range files {
		st, err := stateOf(f)
		if err != nil {
			return nil, err
		}
		out = append(out, Change{Path: f.Path, State: st})
	}
	return out, nil
}

// stateOf compares f with what is at its path now: content and mode (or
// the link's target).
func stateOf(f File) (State, error) {
	fi, err := os.Lstat(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Created, nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", f.Path, err)
	}
	if f.Unknown {
		return Changed, nil
	}
	if f.Link != "" {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return Changed, nil
		}
		got, err := os.Readlink(f.Path)
		if err != nil {
			return "", fmt.Errorf("read link %s: %w", f.Path, err)
		}
		return unchangedIf(got == f.Link), nil
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != f.Mode {
		return Changed, nil
	}
	old, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f.Path, err)
	}
	return unchangedIf(bytes.Equal(old, f.Data)), nil
}

func unchangedIf(same bool) State {
	if same {
		return Unchanged
	}
	return Changed
}

// Switch installs files and keeps the old versions until check (sshd -t)
// and then reload have both succeeded. Each changed file's old version is
// kept as a hard link beside it (same inode: content, mode and owner), the
// new one is written atomically in its place; if check or reload fails,
// every old version is renamed back, every file and directory that did
// not exist is removed, and the error says what failed. With nothing
// changed, neither check nor reload runs.
func Switch(files []File, check, reload func() error) ([]Change, error) {
	changes, err := Plan(files)
	if err != nil {
		return nil, err
	}
	var todo []File
	for i, c := range changes {
		if c.State != Unchanged {
			todo = append(todo, files[i])
		}
	}
	if len(todo) == 0 {
		return changes, nil
	}
	var u undo
	if err := u.install(todo); err != nil {
		return nil, errors.Join(err, u.restore())
	}
	if err := check(); err != nil {
		return nil, u.fail(err, "the new configuration failed the check")
	}
	if err := reload(); err != nil {
		return nil, u.fail(err, "reloading sshd failed")
	}
	if err := u.commit(); err != nil {
		return changes, &LeftoverError{Err: err}
	}
	return changes, nil
}

// LeftoverError is Switch's answer when the switch succeeded (the new
// configuration passed the check and sshd was reloaded with it) but an
// old version kept beside a file could not be removed: nothing is to be
// undone, and the leftover file is harmless beside sshd's configuration.
type LeftoverError struct{ Err error }

func (e *LeftoverError) Error() string {
	return "switched and reloaded, but an old version is left behind: " + e.Err.Error()
}

func (e *LeftoverError) Unwrap() error { return e.Err }

// undo remembers how to put back what a switch changed.
type undo struct {
	dirs    []string // directories created, outermost first
	backups []backup // files written, in order
}

type backup struct {
	path string
	old  string // hard link to the old version; "" when path did not exist
}

func (u *undo) fail(err error, what string) error {
	if rerr := u.restore(); rerr != nil {
		return fmt.Errorf("%s: %w; restoring the old files failed too: %w", what, err, rerr)
	}
	return fmt.Errorf("%s, the old files are back in place: %w", what, err)
}

// install writes each file, keeping its old version first.
func (u *undo) install(files []File) error {
	for _, f := range files {
		if err := u.mkdirs(filepath.Dir(f.Path)); err != nil {
			return err
		}
		b := backup{path: f.Path}
		if _, err := os.Lstat(f.Path); err == nil {
			b.old = filepath.Join(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".jitssh-old")
			if err := os.Remove(b.old); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale %s: %w", b.old, err)
			}
			if err := os.Link(f.Path, b.old); err != nil {
				return fmt.Errorf("keep the old %s: %w", f.Path, err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("inspect %s: %w", f.Path, err)
		}
		u.backups = append(u.backups, b)
		if err := put(f); err != nil {
			return err
		}
	}
	return nil
}

// put writes one file or link atomically.
func put(f File) error {
	if f.Link == "" {
		return atomicfile.Write(f.Path, f.Data, f.Mode)
	}
	tmp := filepath.Join(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".jitssh-new")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	if err := os.Symlink(f.Link, tmp); err != nil {
		return fmt.Errorf("link %s: %w", f.Path, err)
	}
	if err := os.Rename(tmp, f.Path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("link %s: %w", f.Path, err)
	}
	return nil
}

// mkdirs creates dir and missing parents 0755, remembering each.
func (u *undo) mkdirs(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("inspect %s: %w", d, err)
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			return fmt.Errorf("create directory %s: %w", missing[i], err)
		}
		// Mkdir applies the umask; the principals command runs as nobody
		// and must be able to reach the files.
		if err := os.Chmod(missing[i], 0o755); err != nil {
			return fmt.Errorf("chmod 0755 %s: %w", missing[i], err)
		}
		u.dirs = append(u.dirs, missing[i])
	}
	return nil
}

// restore puts every old version back, newest change first.
func (u *undo) restore() error {
	var errs []error
	for i := len(u.backups) - 1; i >= 0; i-- {
		b := u.backups[i]
		var err error
		if b.old != "" {
			err = os.Rename(b.old, b.path)
		} else {
			err = os.Remove(b.path)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("restore %s: %w", b.path, err))
		}
	}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		if err := os.Remove(u.dirs[i]); err != nil {
			errs = append(errs, fmt.Errorf("remove created directory %s: %w", u.dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// commit drops the old versions once the new ones are in force.
func (u *undo) commit() error {
	var errs []error
	for _, b := range u.backups {
		if b.old == "" {
			continue
		}
		if err := os.Remove(b.old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the old version %s: %w", b.old, err))
		}
	}
	return errors.Join(errs...)
}

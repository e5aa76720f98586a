// Package strictmodes refuses files and directories that someone other than
// the daemon's user could change, as sshd's StrictModes does: a policy file
// any local user can edit lets them grant themselves root.
package strictmodes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Entry is one path the daemon trusts.
type Entry struct {
	Path string
	// What names it in messages: "data directory", "policy file".
	What string
	// Optional entries may be absent (a database's -wal and -shm files).
	Optional bool
}

// Error is one refused path: what it is, what is wrong and the command that
// fixes it.
type Error struct {
	Path    string
	What    string
	Problem string
	Fix     string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s %s: run %s", e.What, e.Path, e.Problem, e.Fix)
}

// Checker checks paths for the user whose uid is UID.
type Checker struct {
	UID int
}

// ForProcess returns the Checker for the process's effective user.
func ForProcess() Checker { return Checker{UID: os.Geteuid()} }

// Check returns the first problem (an *Error) among entries and every
// directory above them up to /, or a stat error; nil when all is safe.
//
// An entry must be owned by UID or root and not be writable by group or
// others. A parent directory must be owned by UID or root; it may be
// writable by group or others only with the sticky bit (as /tmp), where no
// one else can rename or remove what UID owns in it. Symbolic
// links are followed, and the parents of both the given and the resolved
// path are checked.
func (c Checker) Check(entries ...Entry) error {
	parents := map[string]bool{}
	for _, e := range entries {
		abs, err := filepath.Abs(e.Path)
		if err != nil {
			return fmt.Errorf("strict modes: %s %q: %w", e.What, e.Path, err)
		}
		fi, err := os.Stat(abs)
		if errors.Is(err, fs.ErrNotExist) && e.Optional {
			continue
		}
		if err != nil {
			return fmt.Errorf("strict modes: %s: %w", e.What, err)
		}
		if err := c.checkEntry(e.What, abs, fi); err != nil {
			return err
		}
		dirs := []string{filepath.Dir(abs)}
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, d := range dirs {
			if err := c.checkParents(d, parents); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c Checker) checkEntry(what, path string, fi fs.FileInfo) error {
	if err := c.checkOwner(what, path, fi); err != nil {
		return err
	}
	if w := writers(fi.Mode()); w != "" {
		return &Error{Path: path, What: what,
			Problem: fmt.Sprintf("is writable by %s (mode %04o), so they could change it", w, fi.Mode().Perm()),
			Fix:     "chmod go-w " + path}
	}
	return nil
}

// checkParents checks dir and each directory above it, once each.
func (c Checker) checkParents(dir string, seen map[string]bool) error {
	for ; !seen[dir]; dir = filepath.Dir(dir) {
		seen[dir] = true
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("strict modes: parent directory: %w", err)
		}
		if err := c.checkOwner("parent directory", dir, fi); err != nil {
			return err
		}
		w := writers(fi.Mode())
		if w != "" && fi.Mode()&fs.ModeSticky == 0 {
			return &Error{Path: dir, What: "parent directory",
				Problem: fmt.Sprintf("is writable by %s (mode %04o) without the sticky bit, so they could swap what it holds", w, fi.Mode().Perm()),
				Fix:     "chmod go-w " + dir}
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	return nil
}

func (c Checker) checkOwner(what, path string, fi fs.FileInfo) error {
	uid := ownerOf(fi)
	if uid == c.UID || uid == 0 {
		return nil
	}
	orRoot := " or by root"
	if c.UID == 0 {
		orRoot = ""
	}
	return &Error{Path: path, What: what,
		Problem: fmt.Sprintf("is owned by %s, not by %s that runs jitd%s", userName(uid), userName(c.UID), orRoot),
		Fix:     "chown " + chownName(c.UID) + " " + path}
}

// writers names who besides the owner may write with mode m, or "".
func writers(m fs.FileMode) string {
	switch m.Perm() & 0o022 {
	case 0o022:
		return "group and others"
	case 0o020:
		return "group"
	case 0o002:
		return "others"
	}
	return ""
}

func ownerOf(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// userName is "uid N (name)", or "uid N" when N has no name.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// chownName is what to pass to chown for uid: its name, or the number.
func chownName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

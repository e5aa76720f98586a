package hostjoin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// checkPaths refuses, before anything is sent or written, a tree under
// which join or renew (running as root) could be steered to write outside
// the root: a symbolic link on the way to any file it writes, or a file
// that is itself one (the timer's enablement link aside, which join
// makes), a directory on the way that someone other than root or this user
// owns or that group or others may write (they could swap in such a link
// after the check), and a host key outside the root (its certificate is
// written beside it).
func checkPaths(l Layout, hostKey string, files []File) error {
	if !within(l.Root, hostKey) {
		return fmt.Errorf("host key %s is outside the root %s: its certificate is written beside it", hostKey, l.Root)
	}
	for _, f := range files {
		if err := checkPath(l.Root, f.Path, f.Link != ""); err != nil {
			return err
		}
	}
	return nil
}

// checkPath walks from root to path, checking each entry that exists.
func checkPath(root, path string, isLink bool) error {
	rel, err := filepath.Rel(root, path)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is outside the root %s", path, root)
	}
	p := root
	parts := strings.Split(rel, string(filepath.Separator))
	for i, part := range append([]string{""}, parts...) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			return nil // what does not exist yet is made by the switch
		}
		if err != nil {
			return fmt.Errorf("check %s: %w", p, err)
		}
		last := i == len(parts)
		if fi.Mode()&os.ModeSymlink != 0 {
			if last && isLink {
				return nil
			}
			return fmt.Errorf("refusing to write through %s: it is a symbolic link, which could point outside %s", p, root)
		}
		if !last || fi.IsDir() {
			if err := safeDir(p, fi); err != nil {
				return err
			}
		}
	}
	return nil
}

// safeDir refuses a directory that someone other than root or this user
// owns, or that group or others may write.
func safeDir(p string, fi os.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("refusing to write under %s: it is writable by group or others (mode %04o): run chmod go-w %s", p, fi.Mode().Perm(), p)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("refusing to write under %s: it is owned by uid %d, not root", p, st.Uid)
	}
	return nil
}

// within reports whether path lies under root.
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && filepath.IsLocal(rel)
}

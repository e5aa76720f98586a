package hostaccount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jitssh/jitssh/api"
)

// killRounds and killPause bound the kill loop: at most killRounds rounds
// of SIGKILL to every process of the UID, killPause apart.
const (
	killRounds = 50
	killPause  = 100 * time.Millisecond
)

// remove removes req's account if the helper made it for that grant with
// that UID; an account that is neither recorded nor on the host is gone
// already.
func (h *helper) remove(ctx context.Context, req api.AccountRequest) ([]api.AccountInfo, error) {
	i := h.state.find(req.Login)
	if i < 0 {
		passwd, err := h.readDB("/etc/passwd")
		if _, onHost := lookup(passwd, req.Login); err != nil || onHost {
			return nil, cmpOr(err, fail(api.AccountCodeNotManaged, "user %s was not made by jitssh; not touched", req.Login))
		}
		return nil, nil
	}
	a := h.state.Accounts[i]
	if a.UID != req.UID || a.Grant != req.Grant {
		return nil, fail(api.AccountCodeNotManaged, "login %s is recorded with uid %d for grant %s, not uid %d for %s", a.Login, a.UID, a.Grant, req.UID, req.Grant)
	}
	if err := h.removeAccount(ctx, a, true); err != nil {
		return nil, err
	}
	return []api.AccountInfo{a}, nil
}

// owns checks that recorded account a is still the helper's on the host:
// gone, or with its UID and in the managed group.
func (h *helper) owns(a api.AccountInfo) error {
	passwd, err := h.readDB("/etc/passwd")
	if err != nil {
		return err
	}
	if _, ok := lookup(passwd, a.Login); !ok {
		return nil
	}
	if err := h.checkManaged(a); err != nil {
		return fail(api.AccountCodeNotManaged, "%v; not touched", err)
	}
	return nil
}

// reap removes every managed account not in keep. It goes on after a
// failure and answers the first.
func (h *helper) reap(ctx context.Context, keep []string) ([]api.AccountInfo, error) {
	var removed []api.AccountInfo
	var first error
	for _, a := range slices.Clone(h.state.Accounts) {
		if slices.Contains(keep, a.Login) {
			continue
		}
		if err := h.removeAccount(ctx, a, true); err != nil {
			first = cmpOr(first, err)
			continue
		}
		removed = append(removed, a)
	}
	return removed, first
}

// cmpOr is the first non-nil error.
func cmpOr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// removeAccount checks that a is still the helper's, kills its processes
// (when kill is set and no other NSS user has its UID), removes its
// sudoers file and sudo timestamps first (so that no error later leaves
// the rule in force), lazily unmounts whatever is mounted under its home
// (a FUSE mount of the user's), removes the user, its group, home, mail
// spool, crontabs, linger flag and at jobs, checks that nothing is left,
// and drops a from the record. It goes through every step whatever fails
// and answers all failures; each step is skipped when already done, so
// that a removal can be retried.
func (h *helper) removeAccount(ctx context.Context, a api.AccountInfo, kill bool) error {
	if err := h.owns(a); err != nil {
		return err
	}
	var errs []error
	if kill {
		errs = append(errs, h.killOwn(ctx, a))
	}
	for _, p := range []string{sudoersFile(a.Login), sudoTimestamp(a.Login)} {
		if err := os.RemoveAll(h.path(p)); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	errs = append(errs, h.unmountUnder(ctx, homeDir(a.Login)))
	errs = append(errs, h.removeUser(ctx, a))
	for _, p := range leftoverPaths(a.Login) {
		if err := os.RemoveAll(h.path(p)); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	for _, dir := range atJobDirs() {
		errs = append(errs, h.removeAtJobs(dir, a.UID))
	}
	// Without kill (the undo of a create, before anything ran as the
	// UID) a process of the UID is not the account's.
	if left := h.leftovers(a, kill); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left after removing %s: %s", a.Login, strings.Join(left, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.state.Accounts = slices.DeleteFunc(h.state.Accounts, func(r api.AccountInfo) bool { return r.Login == a.Login })
	h.state.Sudoers = slices.DeleteFunc(h.state.Sudoers, func(l string) bool { return l == a.Login })
	return h.save()
}

// atJobDirs are where atd keeps its job files: Debian's and RHEL's.
func atJobDirs() []string { return []string{"/var/spool/cron/atjobs", "/var/spool/at"} }

// killOwn kills a's processes unless NSS has another user with a's UID
// (a directory user the helper did not know of when it picked the UID):
// then nothing is killed, since kill -1 as that UID would hit the
// stranger's processes too.
func (h *helper) killOwn(ctx context.Context, a api.AccountInfo) error {
	owners, err := h.uidOwners(ctx, a.UID)
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(owners, func(n string) bool { return n != a.Login }); i >= 0 {
		return fail(api.AccountCodeNotManaged, "uid %d of %s is also user %s through NSS; its processes are not killed (an admin must sort it out)", a.UID, a.Login, owners[i])
	}
	return h.kill(ctx, a.UID)
}

// removeUser removes a's user and its own group if they are there.
func (h *helper) removeUser(ctx context.Context, a api.AccountInfo) error {
	passwd, err := h.readDB("/etc/passwd")
	if err != nil {
		return err
	}
	var errs []error
	if _, ok := lookup(passwd, a.Login); ok {
		errs = append(errs, h.tool(ctx, "userdel", a.Login))
	}
	// Read after userdel, which removes the user's own group itself.
	groups, err := h.readDB("/etc/group")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if g, ok := lookup(groups, a.Login); ok && g.id == a.UID {
		errs = append(errs, h.tool(ctx, "groupdel", a.Login))
	}
	return errors.Join(errs...)
}

// unmountUnder lazily unmounts (umount -l: detached even while busy)
// every mount at or below inside directory dir, deepest first, as
// Options.MountInfo lists them.
func (h *helper) unmountUnder(ctx context.Context, dir string) error {
	info := h.opt.MountInfo
	if info == "" {
		info = "/proc/self/mountinfo"
	}
	b, err := os.ReadFile(info)
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	var under []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		if mp := unescapeMount(f[4]); mp == dir || strings.HasPrefix(mp, dir+"/") {
			under = append(under, mp)
		}
	}
	slices.SortFunc(under, func(x, y string) int { return len(y) - len(x) })
	var errs []error
	for _, mp := range slices.Compact(under) {
		errs = append(errs, h.tool(ctx, "umount", "-l", mp))
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// kill sends SIGKILL to every process of uid until none is left, at most
// killRounds times. Each round first has `kill -KILL -1` run as uid (via
// setpriv), which signals all of them at once, so a process forking in a
// loop cannot outrun the scan of /proc.
func (h *helper) kill(ctx context.Context, uid int) error {
	id := strconv.Itoa(uid)
	for round := 0; round < killRounds; round++ {
		pids, err := processes(uid)
		if err != nil || len(pids) == 0 {
			return err
		}
		// It fails when nothing was left to signal; the scan decides.
		_ = h.tool(ctx, "setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", "kill", "-s", "KILL", "--", "-1")
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(killPause)
	}
	pids, err := processes(uid)
	if err != nil || len(pids) == 0 {
		return err
	}
	return fail(api.AccountCodeStillRunning, "processes %v of uid %d survived %d rounds of SIGKILL; retry the removal", pids, uid, killRounds)
}

// removeAtJobs removes the at jobs in inside directory spool owned by uid
// (atd runs a job file as its owner).
func (h *helper) removeAtJobs(spool string, uid int) error {
	dir := h.path(spool)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list at jobs: %w", err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && fi.Mode().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove at job %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// leftovers lists what of a is still on the host (its processes too if
// procs).
func (h *helper) leftovers(a api.AccountInfo, procs bool) []string {
	var left []string
	for _, db := range []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"} {
		b, err := os.ReadFile(h.path(db))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			left = append(left, fmt.Sprintf("%s unreadable (%v)", db, err))
		}
		if strings.HasPrefix(string(b), a.Login+":") || strings.Contains(string(b), "\n"+a.Login+":") {
			left = append(left, "entry in "+db)
		}
	}
	for _, p := range leftoverPaths(a.Login) {
		if ok, err := h.exists(p); ok || err != nil {
			left = append(left, p)
		}
	}
	if pids, err := processes(a.UID); procs && (err != nil || len(pids) > 0) {
		left = append(left, fmt.Sprintf("processes %v (%v)", pids, err))
	}
	return left
}

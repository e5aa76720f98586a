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
	if err := h.removeAccount(ctx, a); err != nil {
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
		if err := h.removeAccount(ctx, a); err != nil {
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

// removeAccount checks that a is still the helper's, kills its processes, removes the user, its group, home,
// sudoers file, mail spool, crontab and at jobs, checks that nothing is
// left, and drops a from the record. Each step is skipped when already
// done, so that a removal can be retried.
func (h *helper) removeAccount(ctx context.Context, a api.AccountInfo) error {
	if err := h.owns(a); err != nil {
		return err
	}
	if err := h.kill(ctx, a.UID); err != nil {
		return err
	}
	passwd, err := h.readDB("/etc/passwd")
	if err != nil {
		return err
	}
	if _, ok := lookup(passwd, a.Login); ok {
		if err := h.tool(ctx, "userdel", a.Login); err != nil {
			return err
		}
	}
	groups, err := h.readDB("/etc/group")
	if err != nil {
		return err
	}
	if g, ok := lookup(groups, a.Login); ok && g.id == a.UID {
		if err := h.tool(ctx, "groupdel", a.Login); err != nil {
			return err
		}
	}
	for _, p := range []string{homeDir(a.Login), sudoersFile(a.Login), mailSpool(a.Login), crontabFile(a.Login), sudoTimestamp(a.Login)} {
		if err := os.RemoveAll(h.path(p)); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	if err := h.removeAtJobs(a.UID); err != nil {
		return err
	}
	if left := h.leftovers(a); len(left) > 0 {
		return fmt.Errorf("left after removing %s: %s", a.Login, strings.Join(left, ", "))
	}
	h.state.Accounts = slices.DeleteFunc(h.state.Accounts, func(r api.AccountInfo) bool { return r.Login == a.Login })
	return h.save()
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

// removeAtJobs removes the at jobs owned by uid (atd runs a job file as
// its owner).
func (h *helper) removeAtJobs(uid int) error {
	dir := h.path("/var/spool/cron/atjobs")
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

// leftovers lists what of a is still on the host.
func (h *helper) leftovers(a api.AccountInfo) []string {
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
	for _, p := range []string{homeDir(a.Login), sudoersFile(a.Login), mailSpool(a.Login), crontabFile(a.Login)} {
		if ok, err := h.exists(p); ok || err != nil {
			left = append(left, p)
		}
	}
	if pids, err := processes(a.UID); err != nil || len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes %v (%v)", pids, err))
	}
	return left
}

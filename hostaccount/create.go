package hostaccount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jitssh/jitssh/api"
)

// The inside paths of an account's files.
func homeDir(login string) string       { return "/home/" + login }
func sudoersFile(login string) string   { return "/etc/sudoers.d/" + api.AccountSudoersName(login) }
func mailSpool(login string) string     { return "/var/mail/" + login }
func crontabFile(login string) string   { return "/var/spool/cron/crontabs/" + login }
func sudoTimestamp(login string) string { return "/run/sudo/ts/" + login }

// crontabFileRHEL and lingerFile are the other places a login leaves
// behind: cronie's crontab (RHEL, Fedora) and systemd's linger flag
// (loginctl enable-linger keeps the user's manager running).
func crontabFileRHEL(login string) string { return "/var/spool/cron/" + login }
func lingerFile(login string) string      { return "/var/lib/systemd/linger/" + login }

// leftoverPaths are the inside paths of login's files that must not exist
// before a create and after a removal.
func leftoverPaths(login string) []string {
	return []string{homeDir(login), sudoersFile(login), mailSpool(login), crontabFile(login), crontabFileRHEL(login), lingerFile(login)}
}

// create makes req's account, or answers the one already made for the
// same login and grant.
func (h *helper) create(ctx context.Context, req api.AccountRequest) (api.AccountInfo, error) {
	if i := h.state.find(req.Login); i >= 0 {
		a := h.state.Accounts[i]
		if a.Grant != req.Grant {
			return a, fail(api.AccountCodeNameExists, "login %s is managed for grant %s, not %s", a.Login, a.Grant, req.Grant)
		}
		err := h.checkManaged(a)
		if err == nil && slices.Contains(h.state.Sudoers, a.Login) {
			err = h.checkSudoersFile(ctx, a.Login)
		}
		if err != nil {
			return a, fmt.Errorf("login %s is recorded for grant %s but incomplete (%v); remove it first", a.Login, a.Grant, err)
		}
		return a, nil
	}
	if err := h.checkNew(ctx, req); err != nil {
		return api.AccountInfo{}, err
	}
	uid, err := h.pickUID(ctx, req)
	if err != nil {
		return api.AccountInfo{}, err
	}
	sudoTmp, err := h.checkSudo(ctx, req)
	if sudoTmp != "" {
		defer os.Remove(h.path(sudoTmp)) // gone once renamed into place
	}
	if err != nil {
		return api.AccountInfo{}, err
	}
	// Recorded before anything is made: a crash from here on leaves an
	// account that remove and reap know, and its UID is never handed out
	// again.
	a := api.AccountInfo{Login: req.Login, UID: uid, Grant: req.Grant, Created: h.opt.Now().UTC()}
	mark := h.state.HighWater
	h.state.HighWater = uid
	h.state.Accounts = append(h.state.Accounts, a)
	if sudoTmp != "" {
		h.state.Sudoers = append(h.state.Sudoers, a.Login)
	}
	if err := h.save(); err != nil {
		return api.AccountInfo{}, err
	}
	err = h.makeAccount(ctx, req, uid, sudoTmp)
	if err == nil {
		return a, nil
	}
	// Nothing of the new account has run yet, so the undo kills nothing:
	// a process of this UID can only be a stranger's (a directory user).
	made, merr := h.userMade(a)
	if uerr := h.removeAccount(ctx, a, false); uerr != nil {
		return api.AccountInfo{}, errors.Join(fmt.Errorf("create %s: %w; undoing it failed too (remove it again): %v", a.Login, err, uerr), merr)
	}
	if merr == nil && !made {
		// useradd never wrote the user: no file can be owned by its UID
		// (useradd makes the home only after writing passwd; the group
		// groupadd made owns nothing and is gone), so the UID was never
		// handed out and the mark goes back.
		h.state.HighWater = mark
		if serr := h.save(); serr != nil {
			return api.AccountInfo{}, errors.Join(fmt.Errorf("create %s (undone): %w", a.Login, err), serr)
		}
	}
	return api.AccountInfo{}, wrapFailure(fmt.Sprintf("create %s (undone)", a.Login), err)
}

// wrapFailure prefixes err's message with what, keeping its answer code.
func wrapFailure(what string, err error) error {
	var f *failure
	if errors.As(err, &f) {
		return &failure{code: f.code, msg: what + ": " + f.msg}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// userMade reports whether a's user was written to /etc/passwd (with its
// UID) or its home exists: then the UID may own files and stays used.
func (h *helper) userMade(a api.AccountInfo) (bool, error) {
	passwd, err := h.readDB("/etc/passwd")
	if err != nil {
		return true, err
	}
	if hasID(passwd, a.UID) {
		return true, nil
	}
	if _, ok := lookup(passwd, a.Login); ok {
		return true, nil
	}
	return h.exists(homeDir(a.Login))
}

// checkNew refuses a create whose login, group, home or leftover files
// exist, whose shell /etc/shells does not list, whose groups are missing,
// or when the managed group has members the helper did not make.
func (h *helper) checkNew(ctx context.Context, req api.AccountRequest) error {
	passwd, groups, err := h.dbs()
	if err != nil {
		return err
	}
	// NSS as well as the local files: useradd refuses a name a directory
	// service (LDAP, SSSD) has, and a directory user is never adopted.
	if u, err := h.nssNames(ctx, "passwd", req.Login); err != nil {
		return err
	} else if _, ok := lookup(passwd, req.Login); ok || len(u) > 0 {
		return fail(api.AccountCodeNameExists, "user %s already exists on the host and is not managed by jitssh", req.Login)
	}
	if g, err := h.nssNames(ctx, "group", req.Login); err != nil {
		return err
	} else if _, ok := lookup(groups, req.Login); ok || len(g) > 0 {
		return fail(api.AccountCodeNameExists, "group %s already exists on the host", req.Login)
	}
	for _, p := range leftoverPaths(req.Login) {
		if ok, err := h.exists(p); err != nil {
			return err
		} else if ok {
			return fail(api.AccountCodeNameExists, "%s already exists on the host; it is never adopted", p)
		}
	}
	if ok, err := h.listedShell(req.Shell); err != nil {
		return err
	} else if !ok {
		return fail(api.AccountCodeBadShell, "shell %s is not listed in /etc/shells", req.Shell)
	}
	for _, g := range req.Groups {
		if _, ok := lookup(groups, g); !ok {
			return fail(api.AccountCodeUnknownGroup, "group %s does not exist on the host", g)
		}
	}
	if mg, ok := lookup(groups, api.AccountManagedGroup); ok {
		for _, m := range mg.members {
			if h.state.find(m) < 0 {
				return fail(api.AccountCodeNameExists, "group %s has member %s, which jitssh did not make", api.AccountManagedGroup, m)
			}
		}
	}
	return nil
}

// pickUID is the lowest UID of the request's range above the high-water
// mark that no user or group has, locally or through NSS (nor 65534 and
// 65535, nobody and -1 of 16-bit IDs).
func (h *helper) pickUID(ctx context.Context, req api.AccountRequest) (int, error) {
	passwd, groups, err := h.dbs()
	if err != nil {
		return 0, err
	}
	// Each skipped UID is taken by an entry; the range bounds the loop.
	for uid := max(req.UIDMin, h.state.HighWater+1); uid <= req.UIDMax; uid++ {
		if uid == 65534 || uid == 65535 || hasID(passwd, uid) || hasID(groups, uid) {
			continue
		}
		taken, err := h.nssHasID(ctx, uid)
		if err != nil {
			return 0, err
		}
		if !taken {
			return uid, nil
		}
	}
	return 0, fail(api.AccountCodeUIDRangeExhausted, "no free uid in %d-%d above the host's high-water mark %d", req.UIDMin, req.UIDMax, h.state.HighWater)
}

// sudoersRule is the sudoers.d text for login's sudo commands.
func sudoersRule(login, grant string, sudo []string) string {
	rule := fmt.Sprintf("%s ALL=(root) NOPASSWD: %s", login, strings.Join(sudo, ", "))
	if slices.Equal(sudo, []string{"ALL"}) {
		rule = login + " ALL=(ALL:ALL) NOPASSWD: ALL"
	}
	return fmt.Sprintf("# jitssh ephemeral account %s for grant %s; removed with the account.\n%s\n", login, grant, rule)
}

// checkSudo writes req's sudoers rule to a temporary file in
// /etc/sudoers.d (its name has a dot, which sudo skips), mode 0440, and
// has visudo -cf check it. It returns the file's inside path ("" without
// sudo); on refusal the file is removed and the error is sudo_rejected.
func (h *helper) checkSudo(ctx context.Context, req api.AccountRequest) (string, error) {
	if len(req.Sudo) == 0 {
		return "", nil
	}
	return h.writeSudoers(ctx, req.Login, sudoersRule(req.Login, req.Grant, req.Sudo))
}

// writeSudoers is checkSudo's file step for the rule text.
func (h *helper) writeSudoers(ctx context.Context, login, text string) (string, error) {
	f, err := os.CreateTemp(h.path("/etc/sudoers.d"), sudoersTempPattern)
	if err != nil {
		return "", fmt.Errorf("write sudoers rule: %w", err)
	}
	inside := "/etc/sudoers.d/" + path.Base(f.Name())
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o440)
	}
	if err != nil {
		return inside, fmt.Errorf("write sudoers rule: %w", err)
	}
	if err := h.tool(ctx, "visudo", "-cf", inside); err != nil {
		return inside, fail(api.AccountCodeSudoRejected, "sudo rule for %s refused, nothing written: %v", login, err)
	}
	return inside, nil
}

// checkSudoersFile checks that login's sudoers file is in place and that
// sudo applies it: a host whose /etc/sudoers has no @includedir
// /etc/sudoers.d would ignore it silently.
func (h *helper) checkSudoersFile(ctx context.Context, login string) error {
	if ok, err := h.exists(sudoersFile(login)); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("sudoers file %s is missing", sudoersFile(login))
	}
	out, err := h.toolOutput(ctx, "sudo", "-n", "-l", "-U", login)
	if err != nil {
		return fail(api.AccountCodeSudoRejected, "sudo -l -U %s: %v", login, err)
	}
	if !strings.Contains(out, "NOPASSWD:") {
		return fail(api.AccountCodeSudoRejected, "sudo does not apply %s to %s (does /etc/sudoers lack @includedir /etc/sudoers.d?): %s",
			sudoersFile(login), login, strings.TrimSpace(out))
	}
	return nil
}

// makeAccount makes the managed group if missing, login's own group, the
// account with a fresh home, and puts the checked sudoers file in place.
func (h *helper) makeAccount(ctx context.Context, req api.AccountRequest, uid int, sudoTmp string) error {
	groups, err := h.readDB("/etc/group")
	if err != nil {
		return err
	}
	if _, ok := lookup(groups, api.AccountManagedGroup); !ok {
		if err := h.tool(ctx, "groupadd", "--system", api.AccountManagedGroup); err != nil {
			return err
		}
	}
	id := strconv.Itoa(uid)
	if err := h.tool(ctx, "groupadd", "-g", id, req.Login); err != nil {
		return err
	}
	// -l: no lastlog/faillog entry (sparse files sized by the UID); -p '*':
	// no password, yet not locked (sshd without PAM refuses a locked
	// account); no subordinate IDs; a home only the account can read.
	args := []string{"-l", "-m", "-d", homeDir(req.Login), "-u", id, "-g", id,
		"-G", strings.Join(append([]string{api.AccountManagedGroup}, req.Groups...), ","),
		"-s", req.Shell, "-p", "*", "-c", "jitssh " + req.Grant,
		"-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", req.Login}
	if err := h.tool(ctx, "useradd", args...); err != nil {
		return err
	}
	// chmod rather than -K HOME_MODE, which older shadow-utils (RHEL 8,
	// Debian 11) do not know.
	if err := os.Chmod(h.path(homeDir(req.Login)), 0o700); err != nil {
		return fmt.Errorf("chmod home of %s: %w", req.Login, err)
	}
	if err := h.checkManaged(api.AccountInfo{Login: req.Login, UID: uid}); err != nil {
		return err
	}
	if sudoTmp != "" {
		if err := os.Rename(h.path(sudoTmp), h.path(sudoersFile(req.Login))); err != nil {
			return fmt.Errorf("put sudoers rule in place: %w", err)
		}
		return h.checkSudoersFile(ctx, req.Login)
	}
	return nil
}

// checkManaged checks that a's user exists with its UID and is in the
// managed group.
func (h *helper) checkManaged(a api.AccountInfo) error {
	passwd, groups, err := h.dbs()
	if err != nil {
		return err
	}
	if e, ok := lookup(passwd, a.Login); !ok || e.id != a.UID {
		return fmt.Errorf("user %s with uid %d is not in /etc/passwd", a.Login, a.UID)
	}
	if mg, ok := lookup(groups, api.AccountManagedGroup); !ok || !slices.Contains(mg.members, a.Login) {
		return fmt.Errorf("user %s is not in group %s", a.Login, api.AccountManagedGroup)
	}
	return nil
}

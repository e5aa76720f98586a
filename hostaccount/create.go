package hostaccount

import (
	"context"
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

// create makes req's account, or answers the one already made for the
// same login and grant.
func (h *helper) create(ctx context.Context, req api.AccountRequest) (api.AccountInfo, error) {
	if i := h.state.find(req.Login); i >= 0 {
		a := h.state.Accounts[i]
		if a.Grant != req.Grant {
			return a, fail(api.AccountCodeNameExists, "login %s is managed for grant %s, not %s", a.Login, a.Grant, req.Grant)
		}
		if err := h.checkManaged(a); err != nil {
			return a, fmt.Errorf("login %s is recorded for grant %s but incomplete (%v); remove it first", a.Login, a.Grant, err)
		}
		return a, nil
	}
	if err := h.checkNew(req); err != nil {
		return api.AccountInfo{}, err
	}
	uid, err := h.pickUID(req)
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
	h.state.HighWater = uid
	h.state.Accounts = append(h.state.Accounts, a)
	if err := h.save(); err != nil {
		return api.AccountInfo{}, err
	}
	if err := h.makeAccount(ctx, req, uid, sudoTmp); err != nil {
		if uerr := h.removeAccount(ctx, a); uerr != nil {
			return api.AccountInfo{}, fmt.Errorf("create %s: %w; undoing it failed too (remove it again): %v", a.Login, err, uerr)
		}
		return api.AccountInfo{}, fmt.Errorf("create %s (undone): %w", a.Login, err)
	}
	return a, nil
}

// checkNew refuses a create whose login, group, home or leftover files
// exist, whose shell /etc/shells does not list, whose groups are missing,
// or when the managed group has members the helper did not make.
func (h *helper) checkNew(req api.AccountRequest) error {
	passwd, groups, err := h.dbs()
	if err != nil {
		return err
	}
	if _, ok := lookup(passwd, req.Login); ok {
		return fail(api.AccountCodeNameExists, "user %s already exists on the host and is not managed by jitssh", req.Login)
	}
	if _, ok := lookup(groups, req.Login); ok {
		return fail(api.AccountCodeNameExists, "group %s already exists on the host", req.Login)
	}
	for _, p := range []string{homeDir(req.Login), sudoersFile(req.Login), mailSpool(req.Login), crontabFile(req.Login)} {
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
// mark that no user or group has (nor 65534 and 65535, nobody and -1 of
// 16-bit IDs).
func (h *helper) pickUID(req api.AccountRequest) (int, error) {
	passwd, groups, err := h.dbs()
	if err != nil {
		return 0, err
	}
	// Each skipped UID is taken by an entry, so the loop runs at most
	// len(passwd)+len(groups)+3 times.
	for uid := max(req.UIDMin, h.state.HighWater+1); uid <= req.UIDMax; uid++ {
		if uid != 65534 && uid != 65535 && !hasID(passwd, uid) && !hasID(groups, uid) {
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
	f, err := os.CreateTemp(h.path("/etc/sudoers.d"), ".jitssh-new-*")
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
		"-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", "-K", "HOME_MODE=0700", req.Login}
	if err := h.tool(ctx, "useradd", args...); err != nil {
		return err
	}
	if sudoTmp != "" {
		if err := os.Rename(h.path(sudoTmp), h.path(sudoersFile(req.Login))); err != nil {
			return fmt.Errorf("put sudoers rule in place: %w", err)
		}
	}
	return h.checkManaged(api.AccountInfo{Login: req.Login, UID: uid})
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

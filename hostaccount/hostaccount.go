// Package hostaccount is the target side of ephemeral accounts: the helper
// that `jit host account` runs as the force-command of jitd's provisioning
// login. It does exactly one of create, remove, reap and list (api.AccountOp*)
// on the one JSON request api.ParseAccountRequest accepts, with the stock
// shadow-utils tools (groupadd, useradd, userdel, groupdel) and visudo, and
// answers one api.AccountAnswer.
//
// It only ever touches accounts that are both in its own record
// (api.AccountStateFile, replaced atomically) and in the managed group
// api.AccountManagedGroup; an existing name, group, home or UID is never
// adopted. UIDs come from the request's range above the record's
// high-water mark, which only grows, so no UID is handed out twice. Two
// runs on one host serialise on a lock in the state directory.
package hostaccount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/atomicfile"
)

// lockTimeout bounds the wait for another run of the helper on the host.
const lockTimeout = 30 * time.Second

// maxErrorLen bounds the Error of an answer (tool output included).
const maxErrorLen = 1024

// Options say where the helper's world is. The zero value is a real host.
type Options struct {
	// Root prefixes every path the helper reads or writes itself (/etc,
	// /home, /var/mail, /var/spool/cron, the state directory); "" on a
	// real host. A test sets it to a private root's /proc/PID/root.
	Root string
	// Wrap, if set, turns each tool's command line into the one that runs
	// it (inside a test's private root); the tools see the paths without
	// Root.
	Wrap func(name string, args ...string) []string
	// StateDir is the state directory below Root; "" is api.AccountStateDir.
	StateDir string
	// MountInfo is the mountinfo file of the mount namespace the tools
	// run in; "" is /proc/self/mountinfo (the helper's own).
	MountInfo string
	// Now is the clock of the record's Created times; nil is time.Now.
	Now func() time.Time
}

// failure is an outcome with its answer code.
type failure struct{ code, msg string }

func (f *failure) Error() string { return f.msg }

// fail makes a failure with code and a message.
func fail(code, format string, args ...any) error {
	return &failure{code: code, msg: fmt.Sprintf(format, args...)}
}

// state is the helper's record on the host.
type state struct {
	HighWater int               `json:"high_water"`
	Accounts  []api.AccountInfo `json:"accounts"`
	// Sudoers are the logins made with a sudoers file, so that a missing
	// file is noticed.
	Sudoers []string `json:"sudoers,omitempty"`
}

// find returns the index of login's record, or -1.
func (s *state) find(login string) int {
	return slices.IndexFunc(s.Accounts, func(a api.AccountInfo) bool { return a.Login == login })
}

// helper is one run: the options and the record it holds the lock of.
type helper struct {
	opt   Options
	state state
}

// Run does op with the request on stdin and writes the one answer on
// stdout. It returns the exit code: api.AccountExitOK when the answer is
// ok, api.AccountExitUsage when op is not an operation, else
// api.AccountExitFailed.
func Run(ctx context.Context, op string, stdin io.Reader, stdout io.Writer, opt Options) int {
	if opt.StateDir == "" {
		opt.StateDir = api.AccountStateDir
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	h := &helper{opt: opt}
	accounts, err := h.run(ctx, op, stdin)
	ans := api.AccountAnswer{OK: err == nil, Accounts: accounts, HighWater: h.state.HighWater}
	code := api.AccountExitOK
	if err != nil {
		ans.Code, ans.Error, code = api.AccountCodeFailed, err.Error(), api.AccountExitFailed
		var f *failure
		if errors.As(err, &f) {
			ans.Code = f.code
		}
		if len(ans.Error) > maxErrorLen {
			ans.Error = ans.Error[:maxErrorLen] + "…"
		}
		if op != api.AccountOpCreate && op != api.AccountOpRemove && op != api.AccountOpReap && op != api.AccountOpList {
			code = api.AccountExitUsage
		}
	}
	if err := json.NewEncoder(stdout).Encode(ans); err != nil && code == api.AccountExitOK {
		code = api.AccountExitFailed
	}
	return code
}

// run parses the request, takes the lock, loads the record and does op.
func (h *helper) run(ctx context.Context, op string, stdin io.Reader) ([]api.AccountInfo, error) {
	req, err := api.ParseAccountRequest(op, stdin)
	if err != nil {
		return nil, fail(api.AccountCodeBadRequest, "%v", err)
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := h.load(); err != nil {
		return nil, err
	}
	// Under the lock no create is between writing and renaming its
	// sudoers temporary file: any left is from a crash.
	if err := h.sweepSudoersTemps(); err != nil {
		return nil, err
	}
	switch op {
	case api.AccountOpCreate:
		a, err := h.create(ctx, req)
		if err != nil {
			return nil, err
		}
		return []api.AccountInfo{a}, nil
	case api.AccountOpRemove:
		return h.remove(ctx, req)
	case api.AccountOpReap:
		return h.reap(ctx, req.Keep)
	default:
		return h.list()
	}
}

// path is the machine's path of the helper's inside path p.
func (h *helper) path(p string) string { return h.opt.Root + p }

// lock makes the state directory (0700) and takes an exclusive flock on
// its lock file, waiting at most lockTimeout; the returned function
// releases it.
func (h *helper) lock(ctx context.Context) (func(), error) {
	dir := h.path(h.opt.StateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make state directory %s: %w", h.opt.StateDir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod state directory %s: %w", h.opt.StateDir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the flock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) || ctx.Err() != nil {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s (another run of the helper holds it?): %w", h.opt.StateDir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// load reads the record; a missing one is empty.
func (h *helper) load() error {
	b, err := os.ReadFile(h.path(filepath.Join(h.opt.StateDir, api.AccountStateFile)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read record: %w", err)
	}
	if err := json.Unmarshal(b, &h.state); err != nil {
		return fmt.Errorf("record %s is corrupt (fix or restore it; the helper will not guess): %w", api.AccountStateFile, err)
	}
	return nil
}

// save replaces the record atomically.
func (h *helper) save() error {
	b, err := json.MarshalIndent(h.state, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(h.path(filepath.Join(h.opt.StateDir, api.AccountStateFile)), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save record: %w", err)
	}
	return nil
}

// list answers every managed account with its live process count.
func (h *helper) list() ([]api.AccountInfo, error) {
	out := make([]api.AccountInfo, 0, len(h.state.Accounts))
	for _, a := range h.state.Accounts {
		n, err := processes(a.UID)
		if err != nil {
			return nil, err
		}
		a.Processes = len(n)
		out = append(out, a)
	}
	return out, nil
}

// sudoersTempPattern is the name of checkSudo's temporary files (with a
// dot, so sudo skips them).
const sudoersTempPattern = ".jitssh-new-*"

// sweepSudoersTemps removes the temporary sudoers files a crashed run left.
func (h *helper) sweepSudoersTemps() error {
	left, err := filepath.Glob(h.path("/etc/sudoers.d/" + sudoersTempPattern))
	if err != nil {
		return err
	}
	for _, f := range left {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale sudoers file %s: %w", filepath.Base(f), err)
		}
	}
	return nil
}

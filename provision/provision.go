// Package provision is jitd's side of ephemeral accounts (docs/ephemeral.md):
// it creates the one-time account of an ephemeral grant on its target when
// the grant's first session starts, and removes it once the grant is over
// and none of its sessions is live, retrying with backoff from the audit
// store's queue. Every outcome is recorded (account.created,
// account.create_failed, account.removed, account.remove_failed) in the
// transaction that updates the account's row.
//
// The target side is the helper `jit host account`, reached through a
// Runner; the real one (SSHRunner) connects as the provisioning principal
// with a one-minute certificate minted through issuance.
package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
)

// Default reserved UID range of ephemeral accounts (jitd serve
// --ephemeral-uids).
const (
	DefaultUIDMin = 61000
	DefaultUIDMax = 64999
)

// Event types and codes this package records.
const (
	EventCreated      = "account.created"
	EventCreateFailed = "account.create_failed"
	EventRemoved      = "account.removed"
	EventRemoveFailed = "account.remove_failed"
	// CodeNeverCreated is the code of account.removed for an account no
	// create was ever sent for: nothing to remove on the target.
	CodeNeverCreated = "never_created"
	// CodeUnreachable is the code of a failure to run the helper at all.
	CodeUnreachable = "unreachable"
	// CodeBadAnswer is the code of an answer that breaks the protocol.
	CodeBadAnswer = "bad_answer"
)

// Runner runs one operation of the account helper on a target and returns
// its answer. An error means no valid answer came (the target unreachable,
// the helper missing, an answer that breaks the protocol); a refusal by
// the helper is an answer with OK false.
type Runner interface {
	Run(ctx context.Context, host, requestID, op string, req api.AccountRequest) (api.AccountAnswer, error)
}

// Config is what Accounts needs. Store and Runner are required.
type Config struct {
	Store  *audit.Store
	Runner Runner
	// UIDMin and UIDMax are the reserved UID range (inclusive); zero
	// means DefaultUIDMin and DefaultUIDMax.
	UIDMin, UIDMax int
	// Live reports whether a session of the grant is open; nil means
	// none ever is.
	Live func(requestID string) bool
	// Clock is now; nil means time.Now.
	Clock func() time.Time
	// Interval is how often Run sweeps; zero means 5s.
	Interval time.Duration
	// Exclusive, if set, makes work on one host and login exclusive among
	// processes too (replicas on one store): it returns once the caller
	// holds key, or ctx's error, and release ends the hold. Nil means
	// this process is the only one. The context it returns is done once
	// the hold is lost (its lease could not be renewed): the work under
	// it stops, since another process may hold the key then.
	Exclusive func(ctx context.Context, key string) (held context.Context, release func(), err error)
	Logger    *slog.Logger
}

// Accounts creates and removes ephemeral accounts. It is safe for
// concurrent use: operations on one host and login are serialised (in
// this process, and through Config.Exclusive among processes), so
// concurrent first sessions of a grant create its account once.
type Accounts struct {
	cfg Config

	mu    sync.Mutex
	locks map[string]*keyLock
}

// keyLock is the lock of one host and login, with how many hold or wait
// for it so that the map drops unused entries.
type keyLock struct {
	mu    sync.Mutex
	users int
}

// New checks cfg and returns Accounts.
func New(cfg Config) (*Accounts, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("provision: config: Store is required")
	case cfg.Runner == nil:
		return nil, errors.New("provision: config: Runner is required")
	}
	if cfg.UIDMin == 0 && cfg.UIDMax == 0 {
		cfg.UIDMin, cfg.UIDMax = DefaultUIDMin, DefaultUIDMax
	}
	if err := CheckUIDRange(cfg.UIDMin, cfg.UIDMax); err != nil {
		return nil, fmt.Errorf("provision: config: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Live == nil {
		cfg.Live = func(string) bool { return false }
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Accounts{cfg: cfg, locks: map[string]*keyLock{}}, nil
}

// CheckUIDRange refuses a reserved range outside what the helper accepts
// (api.AccountMinUID to api.AccountMaxUID) or empty.
func CheckUIDRange(lo, hi int) error {
	if lo < api.AccountMinUID || hi > api.AccountMaxUID || lo > hi {
		return fmt.Errorf("ephemeral UID range %d-%d must be within %d-%d, lowest first", lo, hi, api.AccountMinUID, api.AccountMaxUID)
	}
	return nil
}

// ParseUIDRange parses "LOW-HIGH" as jitd serve --ephemeral-uids takes it.
func ParseUIDRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("ephemeral UID range %q: want LOW-HIGH, e.g. 61000-64999", s)
	}
	if err := CheckUIDRange(lo, hi); err != nil {
		return 0, 0, err
	}
	return lo, hi, nil
}

// lock serialises work on one host and login, in this process and then
// through Config.Exclusive; call the function returned to unlock, and do
// the work under the context returned, which ends if the hold is lost.
func (a *Accounts) lock(ctx context.Context, host, login string) (context.Context, func(), error) {
	unlock := a.localLock(host, login)
	if a.cfg.Exclusive == nil {
		return ctx, unlock, nil
	}
	// Quoted: unambiguous, and free of the NUL PostgreSQL's TEXT refuses.
	held, release, err := a.cfg.Exclusive(ctx, fmt.Sprintf("account:%q@%q", host, login))
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("exclusive hold of %s@%s: %w", login, host, err)
	}
	return held, func() { release(); unlock() }, nil
}

// localLock serialises work on one host and login in this process.
func (a *Accounts) localLock(host, login string) func() {
	k := host + "\x00" + login
	a.mu.Lock()
	l := a.locks[k]
	if l == nil {
		l = &keyLock{}
		a.locks[k] = l
	}
	l.users++
	a.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		a.mu.Lock()
		if l.users--; l.users == 0 {
			delete(a.locks, k)
		}
		a.mu.Unlock()
	}
}

// PrepareError refuses a session because its grant's account is not
// there; Code is the helper's code or one of this package's, Message is
// for the engineer.
type PrepareError struct {
	Code, Message string
}

func (e *PrepareError) Error() string { return e.Message }

// Prepare makes sure the ephemeral account of request requestID exists on
// its host before a session of the grant as login@host starts: it does nothing for a
// request that is not ephemeral or whose account exists, and creates it
// otherwise (once, however many sessions ask at the same time). A failure
// is recorded (account.create_failed) and returned as a *PrepareError
// saying what to do; the session must then be refused.
func (a *Accounts) Prepare(ctx context.Context, requestID, host, login string) error {
	acc, err := a.cfg.Store.Account(ctx, requestID)
	if errors.Is(err, audit.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("account of request %s: %w", requestID, err)
	}
	if acc.Host != host || acc.Login != login {
		return &PrepareError{Code: "account_mismatch", Message: fmt.Sprintf("grant %s is for %s@%s, not %s@%s", requestID, acc.Login, acc.Host, login, host)}
	}
	ctx, unlock, err := a.lock(ctx, acc.Host, acc.Login)
	if err != nil {
		return err
	}
	defer unlock()
	// Read again under the lock: another session may have created it.
	if acc, err = a.cfg.Store.Account(ctx, requestID); err != nil {
		return fmt.Errorf("account of request %s: %w", requestID, err)
	}
	switch acc.State {
	case audit.AccountCreated:
		return nil
	case audit.AccountRemoving, audit.AccountRemoved:
		return &PrepareError{Code: "account_removed", Message: fmt.Sprintf("the ephemeral account %s of this grant was removed from %s; request a new grant", acc.Login, acc.Host)}
	case audit.AccountFailed:
		// Only an unreachable target is worth another try: any other
		// failure would fail again, and each try may use a UID on the
		// target, so a reconnect loop must not run the range out.
		if code, msg, _ := strings.Cut(acc.LastError, ": "); code != CodeUnreachable {
			return &PrepareError{Code: code, Message: fmt.Sprintf("the ephemeral account %s could not be created on %s (%s): %s%s; this grant will not try again", acc.Login, acc.Host, code, msg, advice(code))}
		}
	}
	if acc.CreateSent && acc.UID == 0 {
		// An earlier create's answer was lost: the target may hold the
		// account with a UID below the mirror raised since, so ask first.
		uid, found, err := a.lookup(ctx, acc)
		if err != nil {
			return a.createFailed(ctx, acc, 0, CodeUnreachable, err.Error())
		}
		if found {
			return a.adopted(ctx, acc, uid)
		}
	}
	return a.create(ctx, acc)
}

// adopted records that the target holds acc's account with uid, made by
// a create whose answer was lost.
func (a *Accounts) adopted(ctx context.Context, acc audit.Account, uid int) error {
	now := a.cfg.Clock().UTC()
	acc.UID, acc.State, acc.CreatedAt, acc.Attempts, acc.LastError = uid, audit.AccountCreated, now, 0, ""
	err := a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.UpdateAccount(acc); err != nil {
			return err
		}
		if err := tx.RaiseHighWater(acc.Host, uid); err != nil {
			return err
		}
		_, err := tx.Append(a.event(EventCreated, "ok", acc, now, "found on the target after a lost answer"))
		return err
	})
	if err != nil {
		return fmt.Errorf("record account %s (uid %d) found on %s: %w", acc.Login, uid, acc.Host, err)
	}
	return nil
}

// create runs the helper's create for acc and records the outcome.
func (a *Accounts) create(ctx context.Context, acc audit.Account) error {
	hw, err := a.cfg.Store.HighWater(ctx, acc.Host)
	if err != nil {
		return err
	}
	req := api.AccountRequest{Login: acc.Login, Grant: acc.RequestID, UIDMin: max(a.cfg.UIDMin, hw+1), UIDMax: a.cfg.UIDMax,
		Groups: acc.Groups, Shell: acc.Shell, Sudo: acc.Sudo}
	if req.UIDMin > req.UIDMax {
		return a.createFailed(ctx, acc, 0, api.AccountCodeUIDRangeExhausted,
			fmt.Sprintf("the reserved UID range %d-%d of %s is used up (high-water mark %d)", a.cfg.UIDMin, a.cfg.UIDMax, acc.Host, hw))
	}
	// From here on the target may hold the account even if no answer
	// comes back: removal must then ask the target.
	if !acc.CreateSent {
		acc.CreateSent = true
		if err := a.cfg.Store.Do(ctx, func(tx *audit.Tx) error { return tx.UpdateAccount(acc) }); err != nil {
			return fmt.Errorf("record create of %s on %s: %w", acc.Login, acc.Host, err)
		}
	}
	ans, err := a.cfg.Runner.Run(ctx, acc.Host, acc.RequestID, api.AccountOpCreate, req)
	if err != nil {
		return a.createFailed(ctx, acc, 0, CodeUnreachable, err.Error())
	}
	if !ans.OK {
		return a.createFailed(ctx, acc, ans.HighWater, ans.Code, ans.Error)
	}
	if len(ans.Accounts) != 1 || ans.Accounts[0].Login != acc.Login || ans.Accounts[0].UID < req.UIDMin || ans.Accounts[0].UID > req.UIDMax {
		return a.createFailed(ctx, acc, ans.HighWater, CodeBadAnswer, fmt.Sprintf("create answered %+v, not one account %s with a UID in %d-%d", ans.Accounts, acc.Login, req.UIDMin, req.UIDMax))
	}
	now := a.cfg.Clock().UTC()
	acc.UID, acc.State, acc.CreatedAt, acc.Attempts, acc.LastError = ans.Accounts[0].UID, audit.AccountCreated, now, 0, ""
	err = a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.UpdateAccount(acc); err != nil {
			return err
		}
		if err := tx.RaiseHighWater(acc.Host, max(ans.HighWater, acc.UID)); err != nil {
			return err
		}
		_, err := tx.Append(a.event(EventCreated, "ok", acc, now, ""))
		return err
	})
	if err != nil {
		return fmt.Errorf("record account %s (uid %d) created on %s: %w", acc.Login, acc.UID, acc.Host, err)
	}
	a.cfg.Logger.Info("ephemeral account created", "host", acc.Host, "login", acc.Login, "uid", acc.UID, "request", acc.RequestID)
	return nil
}

// createFailed records a failed create and returns the engineer's error.
func (a *Accounts) createFailed(ctx context.Context, acc audit.Account, hw int, code, msg string) error {
	now := a.cfg.Clock().UTC()
	msg = boundText(msg)
	acc.State, acc.Attempts, acc.LastError = audit.AccountFailed, acc.Attempts+1, code+": "+msg
	err := a.cfg.Store.Do(context.WithoutCancel(ctx), func(tx *audit.Tx) error {
		if err := tx.UpdateAccount(acc); err != nil {
			return err
		}
		if hw > 0 {
			if err := tx.RaiseHighWater(acc.Host, hw); err != nil {
				return err
			}
		}
		_, err := tx.Append(a.event(EventCreateFailed, code, acc, now, msg))
		return err
	})
	perr := &PrepareError{Code: code, Message: fmt.Sprintf("the ephemeral account %s could not be created on %s (%s): %s%s", acc.Login, acc.Host, code, msg, advice(code))}
	if err != nil {
		return errors.Join(perr, fmt.Errorf("record the failure: %w", err))
	}
	return perr
}

// advice tells the engineer what to do about a failed create.
func advice(code string) string {
	switch code {
	case api.AccountCodeNameExists:
		return "; a user of that name exists on the host and is not jitssh's: request a new grant (it gets a new name)"
	case CodeUnreachable:
		return "; try again when the host is reachable"
	case api.AccountCodeSudoRejected, api.AccountCodeUnknownGroup, api.AccountCodeBadShell:
		return "; the role's account rule does not fit this host: ask an admin"
	}
	return ""
}

// event is an account event with host, login, UID and grant.
func (a *Accounts) event(typ, code string, acc audit.Account, now time.Time, msg string) audit.Event {
	data := map[string]string{"uid": strconv.Itoa(acc.UID), "state": acc.State}
	if typ == EventCreated {
		data["groups"], data["sudo"], data["shell"] = strings.Join(acc.Groups, ","), strings.Join(acc.Sudo, ","), acc.Shell
	}
	if acc.Attempts > 0 {
		data["attempts"] = strconv.Itoa(acc.Attempts)
	}
	if !acc.NextAttempt.IsZero() && typ == EventRemoveFailed {
		data["next_attempt"] = acc.NextAttempt.UTC().Format(time.RFC3339)
	}
	return audit.Event{Time: now, Type: typ, Code: code, Actor: "jitd", User: acc.User, Host: acc.Host, Login: acc.Login,
		RequestID: acc.RequestID, Message: msg, Data: data}
}

// boundText keeps a helper's or a network's error short in records.
func boundText(s string) string { return audit.BoundText(s, 1024) }

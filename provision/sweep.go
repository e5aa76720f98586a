package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
)

// Backoff of failed removals: FirstRetry after the first failure, doubling
// up to MaxRetry. A removal is retried for as long as it fails (it is
// never dropped); its attempts are in the row, jit hosts and the metrics.
const (
	FirstRetry = 30 * time.Second
	MaxRetry   = 30 * time.Minute
)

// Backoff returns how long to wait after the n-th failure in a row (n ≥ 1).
func Backoff(n int) time.Duration {
	d := FirstRetry
	for i := 1; i < n && d < MaxRetry; i++ {
		d *= 2
	}
	return min(d, MaxRetry)
}

// Run sweeps every Config.Interval until ctx is done.
func (a *Accounts) Run(ctx context.Context) {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := a.Sweep(ctx); err != nil && ctx.Err() == nil {
			a.cfg.Logger.Warn("sweep ephemeral accounts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep removes, once, every account that is due: its grant is over
// (expired, revoked, or the request never issued), none of its sessions is
// live, and its next attempt has come. It returns how many it removed;
// failures are recorded on their rows and retried later.
func (a *Accounts) Sweep(ctx context.Context) (int, error) {
	list, err := a.cfg.Store.Accounts(ctx, audit.AccountPlanned, audit.AccountCreated, audit.AccountRemoving, audit.AccountFailed)
	if err != nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, acc := range list {
		if ctx.Err() != nil {
			break
		}
		now := a.cfg.Clock()
		if acc.NextAttempt.After(now) {
			continue
		}
		over, err := a.grantOver(ctx, acc.RequestID, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !over || a.cfg.Live(acc.RequestID) {
			continue
		}
		ok, err := a.remove(ctx, acc.RequestID)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

// grantOver reports whether request id can no longer be used: not issued
// and no longer waiting (denied, expired, cancelled), or issued with a
// certificate that expired or was revoked.
func (a *Accounts) grantOver(ctx context.Context, id string, now time.Time) (bool, error) {
	r, err := a.cfg.Store.Request(ctx, id)
	if err != nil {
		return false, fmt.Errorf("request %s of an account: %w", id, err)
	}
	switch r.State {
	case api.StatePending, api.StateApproved:
		return false, nil
	case api.StateIssued:
	default:
		return true, nil
	}
	c, err := a.cfg.Store.Certificate(ctx, r.Serial)
	if err != nil {
		return false, fmt.Errorf("certificate %d of request %s: %w", r.Serial, id, err)
	}
	return !c.ValidBefore.After(now) || !c.RevokedAt.IsZero(), nil
}

// remove removes the account of request id under its lock and records
// the outcome; true when it is gone.
func (a *Accounts) remove(ctx context.Context, id string) (bool, error) {
	acc, err := a.cfg.Store.Account(ctx, id)
	if err != nil {
		return false, err
	}
	ctx, unlock, err := a.lock(ctx, acc.Host, acc.Login)
	if err != nil {
		return false, err
	}
	defer unlock()
	if acc, err = a.cfg.Store.Account(ctx, id); err != nil || acc.State == audit.AccountRemoved {
		return false, err
	}
	if !acc.CreateSent {
		return true, a.removed(ctx, acc, CodeNeverCreated, 0)
	}
	if acc.UID == 0 {
		// A create went out but its answer was never recorded (a
		// restart, a lost connection): ask the target what it holds.
		uid, found, err := a.lookup(ctx, acc)
		if err != nil {
			return false, a.removeFailed(ctx, acc, CodeUnreachable, err.Error())
		}
		if !found {
			return true, a.removed(ctx, acc, CodeNeverCreated, 0)
		}
		acc.UID = uid
	}
	ans, err := a.cfg.Runner.Run(ctx, acc.Host, acc.RequestID, api.AccountOpRemove, api.AccountRequest{Login: acc.Login, Grant: acc.RequestID, UID: acc.UID})
	switch {
	case err != nil:
		return false, a.removeFailed(ctx, acc, CodeUnreachable, err.Error())
	case !ans.OK:
		return false, a.removeFailed(ctx, acc, ans.Code, ans.Error)
	}
	return true, a.removed(ctx, acc, "ok", ans.HighWater)
}

// lookup asks the target's helper for the account of acc's grant.
func (a *Accounts) lookup(ctx context.Context, acc audit.Account) (int, bool, error) {
	ans, err := a.cfg.Runner.Run(ctx, acc.Host, acc.RequestID, api.AccountOpList, api.AccountRequest{})
	if err != nil {
		return 0, false, err
	}
	if !ans.OK {
		return 0, false, fmt.Errorf("list: %s: %s", ans.Code, ans.Error)
	}
	for _, info := range ans.Accounts {
		if info.Login == acc.Login && info.Grant == acc.RequestID {
			return info.UID, true, nil
		}
	}
	return 0, false, nil
}

// removed records that acc is gone.
func (a *Accounts) removed(ctx context.Context, acc audit.Account, code string, hw int) error {
	now := a.cfg.Clock().UTC()
	acc.State, acc.RemovedAt, acc.NextAttempt, acc.LastError = audit.AccountRemoved, now, time.Time{}, ""
	err := a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.UpdateAccount(acc); err != nil {
			return err
		}
		if hw > 0 {
			if err := tx.RaiseHighWater(acc.Host, hw); err != nil {
				return err
			}
		}
		_, err := tx.Append(a.event(EventRemoved, code, acc, now, ""))
		return err
	})
	if err != nil {
		return fmt.Errorf("record account %s removed from %s: %w", acc.Login, acc.Host, err)
	}
	a.cfg.Logger.Info("ephemeral account removed", "host", acc.Host, "login", acc.Login, "uid", acc.UID, "code", code)
	return nil
}

// removeFailed records a failed removal and when it is tried again.
func (a *Accounts) removeFailed(ctx context.Context, acc audit.Account, code, msg string) error {
	now := a.cfg.Clock().UTC()
	msg = boundText(msg)
	if acc.State != audit.AccountRemoving {
		acc.Attempts = 0 // counting removals from here
	}
	acc.State, acc.Attempts, acc.LastError = audit.AccountRemoving, acc.Attempts+1, code+": "+msg
	acc.NextAttempt = now.Add(Backoff(acc.Attempts))
	err := a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.UpdateAccount(acc); err != nil {
			return err
		}
		_, err := tx.Append(a.event(EventRemoveFailed, code, acc, now, msg))
		return err
	})
	if err != nil {
		return fmt.Errorf("record failed removal of %s from %s: %w", acc.Login, acc.Host, err)
	}
	a.cfg.Logger.Warn("ephemeral account removal failed", "host", acc.Host, "login", acc.Login, "uid", acc.UID,
		"code", code, "err", msg, "attempts", acc.Attempts, "next", acc.NextAttempt)
	return nil
}

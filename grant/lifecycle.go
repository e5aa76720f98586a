package grant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
)

// defaultRedeemTTL applies when the role a request was made under has left
// the policy since; the request is then refused at redemption anyway.
const defaultRedeemTTL = 10 * time.Minute

// Get returns a request and its approvals. The requester, anyone who may
// approve it, admins and auditors may read it.
func (s *Service) Get(ctx context.Context, caller Caller, id string) (Result, error) {
	r, err := s.cfg.Store.Request(ctx, id)
	if err != nil {
		return Result{}, lookupError(id, err)
	}
	pol := s.cfg.Policy()
	if !s.mayRead(pol, caller.User, r) {
		return Result{}, newError(KindForbidden, CodeNotOwner, "request %s belongs to %s", id, r.User)
	}
	approvals, err := s.cfg.Store.Approvals(ctx, id)
	if err != nil {
		return Result{}, unavailable(err)
	}
	return Result{Request: s.withLazyExpiry(r), Approvals: approvals}, nil
}

func (s *Service) mayRead(pol *policy.Policy, user string, r audit.Request) bool {
	if r.User == user || pol.IsAdmin(user) || pol.IsAuditor(user) {
		return true
	}
	ok, _ := pol.CanApprove(user, r.User, r.Role)
	return ok
}

// withLazyExpiry shows a request whose deadline has passed as expired even
// before the sweeper has recorded it.
func (s *Service) withLazyExpiry(r audit.Request) audit.Request {
	if expired(r, s.now()) {
		r.State = StateExpired
	}
	return r
}

// deadline is when r expires in its current state: the end of the wait for
// approval, or of the wait for redemption.
func deadline(r audit.Request) time.Time {
	if r.State == StateApproved {
		return r.RedeemBy
	}
	return r.ExpiresAt
}

func expired(r audit.Request, now time.Time) bool {
	switch r.State {
	case StatePending:
		return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)
	case StateApproved:
		return !r.RedeemBy.IsZero() && !now.Before(r.RedeemBy)
	}
	return false
}

// ListOptions selects requests for List.
type ListOptions struct {
	// Pending lists pending requests the caller may approve, rather than the
	// caller's own requests.
	Pending bool
	// BreakGlass lists every break-glass request, for review by admins and
	// auditors.
	BreakGlass bool
	Limit      int
}

// List returns requests, newest first.
func (s *Service) List(ctx context.Context, caller Caller, opts ListOptions) ([]audit.Request, error) {
	pol := s.cfg.Policy()
	f := audit.RequestFilter{Limit: opts.Limit}
	switch {
	case opts.BreakGlass:
		if !pol.IsAdmin(caller.User) && !pol.IsAuditor(caller.User) {
			return nil, newError(KindForbidden, "not_auditor", "listing break-glass requests needs the admin or auditor role")
		}
		f.BreakGlass = true
	case opts.Pending:
		f.State = StatePending
	default:
		f.User = caller.User
	}
	rs, err := s.cfg.Store.Requests(ctx, f)
	if err != nil {
		return nil, unavailable(err)
	}
	out := rs[:0]
	for _, r := range rs {
		r = s.withLazyExpiry(r)
		if opts.Pending {
			if r.State != StatePending {
				continue
			}
			if ok, _ := pol.CanApprove(caller.User, r.User, r.Role); !ok {
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Approve records the caller's approval. When the role's count of distinct
// approvers is reached the request becomes approved and may be redeemed.
func (s *Service) Approve(ctx context.Context, caller Caller, id, reason string) (Result, error) {
	return s.decide(ctx, caller, id, "approve", reason)
}

// Deny refuses a pending request; one denial from an approver ends it. The
// reason is required: a blank one tells the requester nothing.
func (s *Service) Deny(ctx context.Context, caller Caller, id, reason string) (Result, error) {
	if strings.TrimSpace(reason) == "" {
		return Result{}, newError(KindInvalid, CodeInvalidRequest, "reason is required to deny a request")
	}
	return s.decide(ctx, caller, id, "deny", reason)
}

// decideArgs is one approver's verdict on one request, as decide was asked.
type decideArgs struct {
	caller              Caller
	id, verdict, reason string
	now                 time.Time
	pol                 *policy.Policy
}

// decision is what one decide transaction produced: a result or a refusal,
// and the notifications to send once it is committed.
type decision struct {
	res   Result
	gerr  *Error
	notes []Notification
}

func (s *Service) decide(ctx context.Context, caller Caller, id, verdict, reason string) (Result, error) {
	if err := checkReason(reason); err != nil {
		return Result{}, err
	}
	a := decideArgs{caller: caller, id: id, verdict: verdict, reason: reason, now: s.now(), pol: s.cfg.Policy()}
	var out decision
	err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		out = decision{} // a retried transaction starts afresh
		return s.decideTx(tx, a, &out)
	})
	if err != nil {
		return Result{}, unavailable(err)
	}
	for _, n := range out.notes {
		s.notify(n)
	}
	if out.gerr != nil {
		return Result{}, out.gerr
	}
	return out.res, nil
}

// decideTx checks, inside the transaction, that a.caller may decide the
// request now, and records the verdict or the refusal.
func (s *Service) decideTx(tx *audit.Tx, a decideArgs, out *decision) error {
	r, err := tx.Request(a.id)
	if err != nil {
		if errors.Is(err, audit.ErrNotFound) {
			out.gerr = newError(KindNotFound, CodeNotFound, "no request %q", a.id)
			return nil
		}
		return err
	}
	if expired(r, a.now) {
		deadline := deadline(r)
		if err := s.expireTx(tx, &r, a.now); err != nil {
			return err
		}
		out.notes = append(out.notes, Notification{Event: "request.expired", Request: r, Time: a.now})
		return s.refuseTx(tx, a, r, out, newError(KindConflict, CodeRequestExpired, "request %s expired at %s", a.id, deadline.Format(time.RFC3339)))
	}
	if r.State == StateExpired {
		// The sweeper got there first; the answer is the same as above.
		return s.refuseTx(tx, a, r, out, newError(KindConflict, CodeRequestExpired, "request %s expired at %s", a.id, r.DecidedAt.Format(time.RFC3339)))
	}
	if r.State != StatePending {
		return s.refuseTx(tx, a, r, out, newError(KindConflict, CodeNotPending, "request %s is %s, not pending", a.id, r.State))
	}
	if ok, why := a.pol.CanApprove(a.caller.User, r.User, r.Role); !ok {
		return s.refuseTx(tx, a, r, out, newError(KindForbidden, string(why), "%s may not decide request %s of %s", a.caller.User, a.id, r.User))
	}
	if err := tx.AddApproval(audit.Approval{RequestID: a.id, Approver: a.caller.User, Decision: a.verdict, Reason: a.reason, Time: a.now}); err != nil {
		if errors.Is(err, audit.ErrConflict) {
			return s.refuseTx(tx, a, r, out, newError(KindConflict, CodeAlreadyDecided, "%s has already decided request %s", a.caller.User, a.id))
		}
		return err
	}
	return s.verdictTx(tx, a, r, out)
}

// refuseTx records that a.caller's verdict on r was refused for e.
func (s *Service) refuseTx(tx *audit.Tx, a decideArgs, r audit.Request, out *decision, e *Error) error {
	out.gerr = e
	ev := s.event("approval.refused", e.Code, a.caller, r, a.now, e.Message)
	ev.Data = map[string]string{"verdict": a.verdict}
	_, err := tx.Append(ev)
	return err
}

// verdictTx records the effect of an approval or a denial already added to
// r: a denial ends r, enough approvals approve it, others are counted.
func (s *Service) verdictTx(tx *audit.Tx, a decideArgs, r audit.Request, out *decision) error {
	approvals, err := tx.Approvals(a.id)
	if err != nil {
		return err
	}
	from := r.State
	typ := "request.approval"
	if a.verdict == "deny" {
		r.State, r.DecidedAt, r.DecidedBy, r.DecisionReason = StateDenied, a.now, a.caller.User, a.reason
		typ = "request.denied"
	} else if countApprovals(approvals) >= r.ApprovalsNeeded {
		r.State, r.DecidedAt, r.DecidedBy, r.DecisionReason = StateApproved, a.now, a.caller.User, a.reason
		r.RedeemBy = a.now.Add(redeemTTL(a.pol, r.Role))
		typ = "request.approved"
	}
	if r.State != from {
		if err := tx.UpdateRequest(r, from); err != nil {
			return err
		}
	}
	ev := s.event(typ, a.verdict, a.caller, r, a.now, a.reason)
	ev.Data = map[string]string{"approvals": fmt.Sprint(countApprovals(approvals)), "needed": fmt.Sprint(r.ApprovalsNeeded)}
	if _, err := tx.Append(ev); err != nil {
		return err
	}
	out.res = Result{Request: r, Approvals: approvals}
	if typ != "request.approval" {
		out.notes = append(out.notes, Notification{Event: typ, Request: r, Actor: a.caller.User, Reason: a.reason, Approvals: countApprovals(approvals), Time: a.now})
	}
	return nil
}

func countApprovals(as []audit.Approval) int {
	n := 0
	for _, a := range as {
		if a.Decision == "approve" {
			n++
		}
	}
	return n
}

func redeemTTL(pol *policy.Policy, role string) time.Duration {
	if r, ok := pol.Role(role); ok && r.RedeemTTL > 0 {
		return r.RedeemTTL
	}
	return defaultRedeemTTL
}

func checkReason(reason string) error {
	if len(reason) > 1000 {
		return newError(KindInvalid, CodeInvalidRequest, "reason is %d bytes, over the 1000 byte limit", len(reason))
	}
	for _, c := range reason {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return newError(KindInvalid, CodeInvalidRequest, "reason contains control character %U", c)
		}
	}
	return nil
}

// Cancel withdraws the caller's own pending or approved request.
func (s *Service) Cancel(ctx context.Context, caller Caller, id string) (Result, error) {
	now := s.now()
	var (
		res         Result
		gerr        *Error
		expiredNote *Notification
	)
	err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		res, gerr, expiredNote = Result{}, nil, nil
		r, err := tx.Request(id)
		if err != nil {
			if errors.Is(err, audit.ErrNotFound) {
				gerr = newError(KindNotFound, CodeNotFound, "no request %q", id)
				return nil
			}
			return err
		}
		if r.User != caller.User {
			gerr = newError(KindForbidden, CodeNotOwner, "request %s belongs to %s", id, r.User)
			return nil
		}
		if expired(r, now) {
			deadline := deadline(r)
			if err := s.expireTx(tx, &r, now); err != nil {
				return err
			}
			expiredNote = &Notification{Event: "request.expired", Request: r, Time: now}
			gerr = newError(KindConflict, CodeRequestExpired, "request %s expired at %s", id, deadline.Format(time.RFC3339))
			return nil
		}
		if r.State != StatePending && r.State != StateApproved {
			gerr = newError(KindConflict, CodeNotPending, "request %s is %s and cannot be cancelled", id, r.State)
			return nil
		}
		from := r.State
		r.State, r.DecidedAt, r.DecidedBy, r.DecisionReason = StateCancelled, now, caller.User, "cancelled by requester"
		if err := tx.UpdateRequest(r, from); err != nil {
			return err
		}
		_, err = tx.Append(s.event("request.cancelled", "cancelled", caller, r, now, ""))
		res = Result{Request: r}
		return err
	})
	if err != nil {
		return Result{}, unavailable(err)
	}
	if expiredNote != nil {
		s.notify(*expiredNote)
	}
	if gerr != nil {
		return Result{}, gerr
	}
	s.notify(Notification{Event: "request.cancelled", Request: res.Request, Actor: caller.User, Time: now})
	return res, nil
}

// Redeem exchanges the caller's approved request for its one certificate.
// Policy is evaluated again first: if the user, host or role changed since the
// request was made, nothing is issued.
func (s *Service) Redeem(ctx context.Context, caller Caller, id string) (Result, error) {
	now := s.now()
	r, err := s.cfg.Store.Request(ctx, id)
	if err != nil {
		return Result{}, lookupError(id, err)
	}
	if r.User != caller.User {
		return Result{}, newError(KindForbidden, CodeNotOwner, "request %s belongs to %s", id, r.User)
	}
	if expired(r, now) {
		return Result{}, s.expireOnRedeem(ctx, r, now)
	}
	if r.State != StateApproved {
		return Result{}, newError(KindConflict, CodeNotApproved, "request %s is %s, not approved", id, r.State)
	}
	ephemeral, err := s.isEphemeral(ctx, id)
	if err != nil {
		return Result{}, err
	}
	pol := s.cfg.Policy()
	d := pol.Evaluate(policy.Request{User: r.User, Host: r.Host, Login: r.Login, Ephemeral: ephemeral, TTL: r.TTL, Justification: r.Justification}, now)
	if d.Outcome == policy.Deny || d.Role != r.Role {
		gerr := newError(KindDenied, CodePolicyChanged, "policy no longer allows request %s: %s", id, d.Message)
		if d.Outcome != policy.Deny {
			gerr.Message = fmt.Sprintf("request %s was made under role %q, policy now selects %q", id, r.Role, d.Role)
		}
		_ = s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
			_, err := tx.Append(s.event("request.denied", gerr.Code, caller, r, now, gerr.Message))
			return err
		})
		return Result{}, gerr
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.PublicKey))
	if err != nil {
		return Result{}, fmt.Errorf("stored public key of request %s: %w", id, err)
	}
	d.BreakGlass = r.BreakGlass
	r.State = StateIssued
	cert, err := s.issue(ctx, caller, &r, key, d, now, func(tx *audit.Tx) error {
		cur, err := tx.Request(id)
		if err != nil {
			return err
		}
		if cur.State != StateApproved {
			return &Error{Kind: KindConflict, Code: CodeNotApproved, Message: fmt.Sprintf("request %s is %s, not approved", id, cur.State)}
		}
		return tx.UpdateRequest(r, StateApproved)
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Request: r, Certificate: cert}, nil
}

// expireOnRedeem records that r, which its requester tried to redeem too
// late, has expired, and returns the refusal. If r changed state in the
// meantime the refusal stands and the newer state is left alone.
func (s *Service) expireOnRedeem(ctx context.Context, r audit.Request, now time.Time) error {
	gerr := newError(KindConflict, CodeRequestExpired, "request %s is no longer redeemable: it expired at %s", r.ID, deadline(r).Format(time.RFC3339))
	err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		return s.expireTx(tx, &r, now)
	})
	switch {
	case err == nil:
		s.notify(Notification{Event: "request.expired", Request: r, Time: now})
	case !errors.Is(err, audit.ErrConflict):
		gerr.Err = fmt.Errorf("record expiry: %w", err)
	}
	return gerr
}

// ExpireDue records the expiry of every pending request whose wait is over and
// every approved request that was not redeemed in time. It returns how many
// it expired.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	now := s.now()
	n := 0
	for _, state := range []string{StatePending, StateApproved} {
		rs, err := s.cfg.Store.Requests(ctx, audit.RequestFilter{State: state})
		if err != nil {
			return n, err
		}
		for _, r := range rs {
			if !expired(r, now) {
				continue
			}
			err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
				return s.expireTx(tx, &r, now)
			})
			if errors.Is(err, audit.ErrConflict) {
				continue // decided in the meantime
			}
			if err != nil {
				return n, err
			}
			n++
			s.notify(Notification{Event: "request.expired", Request: r, Time: now})
		}
	}
	return n, nil
}

func (s *Service) expireTx(tx *audit.Tx, r *audit.Request, now time.Time) error {
	from := r.State
	r.State, r.DecidedAt, r.DecisionReason = StateExpired, now, "expired while "+from
	if err := tx.UpdateRequest(*r, from); err != nil {
		return err
	}
	_, err := tx.Append(s.event("request.expired", "expired", Caller{User: "jitd"}, *r, now, "expired while "+from))
	return err
}

func lookupError(id string, err error) error {
	if errors.Is(err, audit.ErrNotFound) {
		return newError(KindNotFound, CodeNotFound, "no request %q", id)
	}
	return unavailable(err)
}

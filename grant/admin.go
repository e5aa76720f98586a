package grant

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/policy"
)

// Codes of the administrative and login operations, in addition to those in
// errors.go and policy's reason codes.
const (
	CodeInvalidUser     = "invalid_user"
	CodeInvalidGroup    = "invalid_group"
	CodeGroupsInPolicy  = "groups_in_policy"
	CodeRefreshFailed   = "refresh_failed"
	CodePolicyInvalid   = "policy_invalid"
	CodeReasonMissing   = "reason_missing"
	CodeInternal        = "internal"
	CodeUnauthenticated = "unauthenticated"
	CodeBadChallenge    = "bad_challenge"
	CodeKeyNotEnrolled  = "key_not_enrolled"
	CodeBadSignature    = "bad_signature"
	CodeBusy            = "busy"
	CodeUserMismatch    = "user_mismatch"
	CodeBadBody         = "bad_body"
	CodeNotAdmin        = "not_admin"
	CodeNotAuditor      = "not_auditor"
)

// Keys of a policy.reload event's data that the replicas' change feeds read.
const (
	// ReloadDataInstance is the instance (AdminConfig.Instance) that reloaded.
	ReloadDataInstance = "instance"
	// ReloadDataCauseSeq is, for a reload made because another replica
	// reloaded, the seq of that replica's policy.reload event.
	ReloadDataCauseSeq = "cause_seq"
)

// maxAuditText bounds the untrusted text of administrative and login events
// (user names sent before login, revocation reasons, refusal messages).
const maxAuditText = 128

// Reloader re-reads the policy in force. The daemon's live policy holder
// satisfies it; on a failed Reload the last good policy stays in force.
type Reloader interface {
	// ReloadChange re-reads the policy file and the enrolled users and
	// reports what changed; on error the last good policy stays in force.
	ReloadChange(ctx context.Context) (livepolicy.Change, error)
	// RefreshUsers merges the users enrolled in the store into the policy.
	RefreshUsers(ctx context.Context) error
}

// AdminConfig holds what an Admin needs. Store, Policy and Reloader are
// required.
type AdminConfig struct {
	Store *audit.Store
	// Policy returns the policy in force, with enrolled users merged in.
	Policy   func() *policy.Policy
	Reloader Reloader
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Instance names this process among the replicas on one store; it goes
	// into each policy.reload event's data ("instance"), so that the other
	// replicas' change feeds reload too and this one knows its own. Empty
	// leaves it out (a single jitd, jitd user add).
	Instance string
}

// Admin performs the administrative operations on the CA: enrolling and
// removing users, revoking certificates and reloading the policy. Each
// checks its input, records its outcome in the audit store and returns an
// *Error whose Kind says how it failed; the caller (the API, jitd user add,
// the SIGHUP handler) decides nothing and audits nothing.
type Admin struct {
	cfg AdminConfig
}

// NewAdmin returns an Admin, or an error naming the missing configuration.
func NewAdmin(cfg AdminConfig) (*Admin, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("grant: admin config: Store is required")
	case cfg.Policy == nil:
		return nil, errors.New("grant: admin config: Policy is required")
	case cfg.Reloader == nil:
		return nil, errors.New("grant: admin config: Reloader is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Admin{cfg: cfg}, nil
}

func (a *Admin) now() time.Time { return a.cfg.Clock().UTC() }

// ReloadPolicy re-reads the policy file, reports what changed and records
// policy.reload with code ok (the change as its message) or failed;
// caller.User is the actor ("SIGHUP" for the signal). A bad file is a
// KindInvalid error with CodePolicyInvalid and the last good policy stays
// in force. A reload whose record fails still stands, and is reported as a
// KindUnavailable error with the change.
func (a *Admin) ReloadPolicy(ctx context.Context, caller Caller) (livepolicy.Change, error) {
	return a.reloadPolicy(ctx, caller, 0)
}

// ReloadPolicyCausedBy is ReloadPolicy for this replica's share of a
// reload made through another replica: the chain's policy.reload event at
// causeSeq (positive). Its record carries "cause_seq", which tells every
// replica's feed not to propagate it again: a reload never loops.
func (a *Admin) ReloadPolicyCausedBy(ctx context.Context, caller Caller, causeSeq int64) (livepolicy.Change, error) {
	if causeSeq <= 0 {
		return livepolicy.Change{}, newError(KindInvalid, CodeInternal, "reload caused by event %d: not an event", causeSeq)
	}
	return a.reloadPolicy(ctx, caller, causeSeq)
}

func (a *Admin) reloadPolicy(ctx context.Context, caller Caller, causeSeq int64) (livepolicy.Change, error) {
	change, rerr := a.cfg.Reloader.ReloadChange(ctx)
	e := audit.Event{Type: "policy.reload", Code: "ok", Actor: caller.User, ClientAddr: caller.ClientAddr, Message: change.String()}
	if a.cfg.Instance != "" || causeSeq > 0 {
		e.Data = map[string]string{}
		if a.cfg.Instance != "" {
			e.Data[ReloadDataInstance] = a.cfg.Instance
		}
		if causeSeq > 0 {
			e.Data[ReloadDataCauseSeq] = strconv.FormatInt(causeSeq, 10)
		}
	}
	if rerr != nil {
		e.Code, e.Message = "failed", rerr.Error()
	}
	recErr := appendEvent(ctx, a.cfg.Store, a.now(), e)
	if rerr != nil {
		return change, withRecordFailure(&Error{Kind: KindInvalid, Code: CodePolicyInvalid, Message: rerr.Error(), Err: rerr}, recErr)
	}
	if recErr != nil {
		// The reload stands (the file is in force); say that its record
		// is missing rather than pretend all is well.
		return change, &Error{Kind: KindUnavailable, Code: CodeAuditUnavailable,
			Message: fmt.Sprintf("policy reloaded (%s) but the audit store could not record it", change), Err: recErr}
	}
	return change, nil
}

// appendEvent records one event in its own transaction, stamped now unless
// it has a time.
func appendEvent(ctx context.Context, store *audit.Store, now time.Time, e audit.Event) error {
	if e.Time.IsZero() {
		e.Time = now
	}
	return store.Append(ctx, e)
}

// refresh merges enrolled users into the policy in force after a change to
// them was committed.
func (a *Admin) refresh(ctx context.Context) error {
	if err := a.cfg.Reloader.RefreshUsers(ctx); err != nil {
		return &Error{Kind: KindInternal, Code: CodeRefreshFailed, Message: err.Error(), Err: err}
	}
	return nil
}

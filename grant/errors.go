package grant

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies why an operation failed, so that callers (the HTTP API, the
// CLI) can map it to a status without matching error strings.
type Kind int

const (
	// KindInvalid means the input was malformed.
	KindInvalid Kind = iota + 1
	// KindDenied means policy refused the request.
	KindDenied
	// KindForbidden means the caller may not perform the operation.
	KindForbidden
	// KindNotFound means the request or certificate does not exist.
	KindNotFound
	// KindConflict means the request is not in a state that allows the operation.
	KindConflict
	// KindUnavailable means the audit store could not record the operation, so
	// nothing was done.
	KindUnavailable
	// KindUnauthenticated means the caller did not prove who they are: a
	// failed login, or a missing, unknown or expired token.
	KindUnauthenticated
	// KindInternal means the daemon failed in a way the caller cannot fix.
	KindInternal
	// KindRateLimited means the caller made too many calls of this kind in
	// the limit's period; Error.RetryAfter says when to try again.
	KindRateLimited
	// KindGone means the thing existed and was removed for good (a removed
	// host).
	KindGone
)

// String returns a stable name for the kind.
func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindDenied:
		return "denied"
	case KindForbidden:
		return "forbidden"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	case KindUnavailable:
		return "unavailable"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindInternal:
		return "internal"
	case KindRateLimited:
		return "rate_limited"
	case KindGone:
		return "gone"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the error type returned by Service methods. Code is a stable,
// machine-readable reason (a policy reason code such as "host_not_allowed" or
// one of this package's codes such as "invalid_public_key"); Message is for
// people and names the offending field.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error
	// RetryAfter is, for KindRateLimited, when the call may be made again.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil && e.Err.Error() != e.Message {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Codes used by this package in addition to policy reason codes.
const (
	CodeInvalidPublicKey   = "invalid_public_key"
	CodeInvalidRequest     = "invalid_request"
	CodeAuditUnavailable   = "audit_unavailable"
	CodeSigningFailed      = "signing_failed"
	CodeNotFound           = "not_found"
	CodeNotPending         = "not_pending"
	CodeRequestExpired     = "request_expired"
	CodeNotApproved        = "not_approved"
	CodeAlreadyDecided     = "already_decided"
	CodeNotOwner           = "not_owner"
	CodePolicyChanged      = "policy_changed"
	CodeCertificateUnknown = "certificate_unknown"
	CodeCertificateRevoked = "certificate_revoked"
	CodeCertificateExpired = "certificate_expired"
)

func newError(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

func unavailable(err error) *Error {
	return &Error{Kind: KindUnavailable, Code: CodeAuditUnavailable, Message: "audit store unavailable", Err: err}
}

// KindOf returns the Kind of err, or 0 when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// withRecordFailure returns gerr, a refusal that stands whether or not its
// audit record could be written, carrying the record's failure (if any) in
// Err so that the transport logs it; the caller still gets the refusal.
func withRecordFailure(gerr *Error, recErr error) *Error {
	if recErr != nil {
		gerr.Err = errors.Join(gerr.Err, fmt.Errorf("record of this refusal failed: %w", recErr))
	}
	return gerr
}

package grant

import (
	"context"
	"fmt"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
)

// Submission is a request for access as a client sent it, before its text
// fields are parsed, so that every refusal, of malformed input too, is
// recorded by the lifecycle and not by the transport.
type Submission struct {
	// User is the user the body names; empty, or it must be the caller.
	User          string
	Host          string
	Login         string
	Justification string
	// TTL is the certificate lifetime asked for ("10m"); empty means the
	// role default.
	TTL        string
	PublicKey  string
	BreakGlass bool
	// IdempotencyKey is the Idempotency-Key header; see
	// CreateRequest.IdempotencyKey.
	IdempotencyKey string
}

// Submit parses the submission and creates the request as Create does. A
// body naming another user (CodeUserMismatch, KindForbidden) and a TTL that
// is not a positive duration (ttl_invalid, KindInvalid) are refused and
// recorded as request.denied, like every refusal of Create.
func (s *Service) Submit(ctx context.Context, caller Caller, sub Submission) (Result, error) {
	if sub.User != "" && sub.User != caller.User {
		gerr := newError(KindForbidden, CodeUserMismatch, "token belongs to %q but the body names %q", caller.User, sub.User)
		return Result{}, s.refuse(ctx, caller, "", gerr)
	}
	ttl, err := parseTTL("ttl", sub.TTL)
	if err != nil {
		return Result{}, s.refuse(ctx, caller, sub.Host, &Error{Kind: KindInvalid, Code: string(policy.ReasonTTLInvalid), Message: err.Error()})
	}
	return s.Create(ctx, caller, CreateRequest{
		Host: sub.Host, Login: sub.Login, Justification: sub.Justification, TTL: ttl,
		PublicKey: sub.PublicKey, BreakGlass: sub.BreakGlass, IdempotencyKey: sub.IdempotencyKey,
	})
}

// RefuseUnreadable records that caller sent a request for access that could
// not be read at all (code bad_body) and returns why unchanged, for the
// transport to answer with.
func (s *Service) RefuseUnreadable(ctx context.Context, caller Caller, why error) error {
	_ = s.record(ctx, caller, CodeBadBody, "", "malformed request body")
	return why
}

// refuse records gerr as request.denied for a submission refused before it
// became a request, and returns it. The refusal stands even if its record
// fails; gerr.Err then says so.
func (s *Service) refuse(ctx context.Context, caller Caller, host string, gerr *Error) error {
	if err := s.record(ctx, caller, gerr.Code, host, gerr.Message); err != nil {
		gerr.Err = fmt.Errorf("audit of denial failed: %w", err)
	}
	return gerr
}

func (s *Service) record(ctx context.Context, caller Caller, code, host, msg string) error {
	return appendEvent(ctx, s.cfg.Store, s.now(), audit.Event{Type: "request.denied", Code: code, Actor: caller.User, User: caller.User,
		Host: audit.BoundText(host, maxAuditText), ClientAddr: caller.ClientAddr, Message: audit.BoundText(msg, maxAuditText)})
}

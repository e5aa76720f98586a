package sso

import "fmt"

// Codes of an *Error: the same strings as api.CodeSSO…; api's test checks
// that each has a constant there.
const (
	CodeUnknownProvider = "sso_unknown_provider"
	CodeBadRedirect     = "sso_bad_redirect"
	CodeFlowUnknown     = "sso_flow_unknown"
	CodeStateMismatch   = "sso_state_mismatch"
	CodeAccessDenied    = "sso_access_denied"
	CodeExpired         = "sso_expired"
	CodeTokenInvalid    = "sso_token_invalid"
	CodeNoUser          = "sso_no_user"
	CodeRefreshFailed   = "sso_refresh_failed"
	CodeProviderFailed  = "sso_provider_failed"
	// CodeBusy is api.CodeBusy: too many flows in progress.
	CodeBusy = "busy"
)

// Reasons of an *Error with CodeTokenInvalid (and a few others): which
// check refused. They are recorded as the audit event's reason.
const (
	ReasonSignature  = "signature"
	ReasonAlgorithm  = "algorithm"
	ReasonUnknownKey = "unknown_kid"
	ReasonIssuer     = "issuer"
	ReasonAudience   = "audience"
	ReasonAZP        = "azp"
	ReasonExpired    = "expired"
	ReasonNotYet     = "not_before"
	ReasonNonce      = "nonce"
	ReasonMalformed  = "malformed"
	ReasonNoIDToken  = "no_id_token"
	ReasonSubject    = "subject"
)

// Error is a refused SSO step: Code is the client-visible code (the
// api.CodeSSO… of the same value), Reason the finer cause for the audit
// record, Message for people. Messages never hold a token.
type Error struct {
	Code    string
	Reason  string
	Message string
	Err     error
	// Provider names the provider the refused step was at, when the step
	// knew it (a flow's); for the audit record.
	Provider string
}

// withProvider sets the provider of err when it is an *Error without one.
func withProvider(err error, name string) error {
	if e, ok := err.(*Error); ok && e.Provider == "" {
		e.Provider = name
	}
	return err
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

func refuse(code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func invalid(reason, format string, args ...any) *Error {
	return refuse(CodeTokenInvalid, reason, format, args...)
}

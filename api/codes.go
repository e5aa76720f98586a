package api

// Error codes: the Code of an ErrorBody, and of the *Error the client
// returns. They are stable: clients and SIEM rules match on them, so a code
// is never renamed and its meaning never changes. The values are the same
// strings the domain packages use (grant's codes, policy's reason codes); a
// test in this package checks that every one of those has a constant here.
const (
	// CodeHTTPError is made by the client, never sent by jitd: the answer was
	// not 2xx and had no JSON error body (a proxy in between, say).
	CodeHTTPError = "http_error"
	// CodeInternal means jitd failed in a way the caller cannot fix (HTTP 500).
	CodeInternal = "internal"
	// CodeAuditUnavailable means the audit store could not record, so
	// nothing was done (HTTP 503).
	CodeAuditUnavailable = "audit_unavailable"
	// CodeBusy means jitd holds too many unanswered login challenges; retry
	// shortly.
	CodeBusy = "busy"
	// CodeRateLimited means the caller made too many logins (per client
	// address) or requests (per user) in the limit's period (HTTP 429); the
	// Retry-After header, and Error.RetryAfter, say when to try again.
	CodeRateLimited = "rate_limited"

	// CodeBodyTooLarge means the request body was over MaxBodyBytes.
	CodeBodyTooLarge = "body_too_large"
	// CodeBadBody means the request body could not be read.
	CodeBadBody = "bad_body"
	// CodeBadJSON means the body was not exactly one JSON object of the
	// expected shape (unknown fields and trailing data are refused).
	CodeBadJSON = "bad_json"
	// CodeBadTime means a since or until parameter was neither RFC 3339 nor
	// a duration.
	CodeBadTime = "bad_time"
	// CodeBadAfter means the after parameter was not a sequence number.
	CodeBadAfter = "bad_after"
	// CodeBadLimit means the limit parameter was out of range.
	CodeBadLimit = "bad_limit"
	// CodeBadPurpose means a recording was asked for with an unknown purpose.
	CodeBadPurpose = "bad_purpose"
	// CodeQueryMissing means a search had no q parameter.
	CodeQueryMissing = "query_missing"
	// CodeSearchFailed means the full-text query could not be run as given.
	CodeSearchFailed = "search_failed"

	// CodeUnauthenticated means the bearer token is missing, unknown,
	// expired or belongs to a user no longer enrolled (HTTP 401).
	CodeUnauthenticated = "unauthenticated"
	// CodeNotAdmin means the operation needs the admin role.
	CodeNotAdmin = "not_admin"
	// CodeNotAuditor means the operation needs the auditor (or admin) role.
	CodeNotAuditor = "not_auditor"

	// CodeBadChallenge means the login nonce is unknown, expired, used or
	// issued for another user.
	CodeBadChallenge = "bad_challenge"
	// CodeKeyNotEnrolled means the login key is not one of the user's keys.
	CodeKeyNotEnrolled = "key_not_enrolled"
	// CodeBadSignature means the login signature is malformed or does not
	// verify over LoginMessage.
	CodeBadSignature = "bad_signature"

	// CodeInvalidUser means a user name is not a valid name.
	CodeInvalidUser = "invalid_user"
	// CodeInvalidGroup means a group name is not a valid name.
	CodeInvalidGroup = "invalid_group"
	// CodeGroupsInPolicy means an enrolment named groups for a user whose
	// groups the policy file sets.
	CodeGroupsInPolicy = "groups_in_policy"
	// CodeRefreshFailed means an enrolment was recorded but the policy in
	// force could not be refreshed with it.
	CodeRefreshFailed = "refresh_failed"
	// CodePolicyInvalid means a reload found the policy file invalid; the
	// last good policy stays in force.
	CodePolicyInvalid = "policy_invalid"
	// CodeReasonMissing means a revocation gave no reason.
	CodeReasonMissing = "reason_missing"
	// CodeUserMismatch means a request body named a user other than the
	// token's.
	CodeUserMismatch = "user_mismatch"

	// CodeNoRecording means the session has no recording.
	CodeNoRecording = "no_recording"
	// CodeRecordingMissing means the session's recording file cannot be
	// opened.
	CodeRecordingMissing = "recording_missing"
)

// Codes of the request lifecycle (package grant).
const (
	// CodeInvalidPublicKey means a submitted public key was refused: not
	// parseable, a certificate or private key, or of a refused type or size.
	CodeInvalidPublicKey = "invalid_public_key"
	// CodeInvalidRequest means a field of the request was malformed.
	CodeInvalidRequest = "invalid_request"
	// CodeSigningFailed means the certificate was recorded but signing it
	// failed; nothing was issued.
	CodeSigningFailed = "signing_failed"
	// CodeNotFound means there is no such request, session, user or
	// certificate (HTTP 404).
	CodeNotFound = "not_found"
	// CodeNotPending means the request is no longer waiting for a decision.
	CodeNotPending = "not_pending"
	// CodeRequestExpired means the request's wait for approval or for
	// redemption is over.
	CodeRequestExpired = "request_expired"
	// CodeNotApproved means the request has not been approved yet.
	CodeNotApproved = "not_approved"
	// CodeAlreadyDecided means the approver has already decided, or the
	// request changed state meanwhile.
	CodeAlreadyDecided = "already_decided"
	// CodeNotOwner means the request belongs to another user.
	CodeNotOwner = "not_owner"
	// CodePolicyChanged means policy, evaluated again at redemption, no
	// longer allows the request.
	CodePolicyChanged = "policy_changed"
	// CodeCertificateUnknown means the certificate presented to the bastion
	// is not one the CA recorded.
	CodeCertificateUnknown = "certificate_unknown"
	// CodeCertificateRevoked means the certificate has been revoked.
	CodeCertificateRevoked = "certificate_revoked"
	// CodeCertificateExpired means the certificate is outside its validity.
	CodeCertificateExpired = "certificate_expired"
	// CodeInvalidIdempotencyKey (400) means the Idempotency-Key header is
	// empty, repeated, over 255 bytes or not printable ASCII.
	CodeInvalidIdempotencyKey = "invalid_idempotency_key"
	// CodeIdempotencyKeyReused (409) means this user sent the key within
	// its window with a different body.
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	// CodeIdempotencyKeyInFlight (409) means the first request with the key
	// is still being issued: retry later for its outcome.
	CodeIdempotencyKeyInFlight = "idempotency_key_in_flight"
)

// IdempotencyKeyHeader is the header of POST /v1/requests that makes a
// retry return the first outcome (IETF httpapi "The Idempotency-Key HTTP
// Header Field").
const IdempotencyKeyHeader = "Idempotency-Key"

// Policy reason codes (package policy), for the outcome of an evaluation.
// docs/policy.md describes each.
const (
	// CodeAllowed means policy allowed the request outright.
	CodeAllowed = "allowed"
	// CodeAutoApproved means a role's automatic approval allowed it.
	CodeAutoApproved = "auto_approved"
	// CodeApprovalRequired means the request waits for approvers.
	CodeApprovalRequired = "approval_required"
	// CodeBreakGlass means a break-glass role allowed it, loudly.
	CodeBreakGlass = "break_glass"
	// CodeUnknownUser means the user is not enrolled (also a failed login).
	CodeUnknownUser = "unknown_user"
	// CodeUnknownHost means the host is not in the inventory.
	CodeUnknownHost = "unknown_host"
	// CodeUnknownRole means the role a request was made under no longer
	// exists, so nobody can approve it.
	CodeUnknownRole = "unknown_role"
	// CodeInvalidLogin means the login name is not a valid name.
	CodeInvalidLogin = "invalid_login"
	// CodeInvalidHost means the host name is not a valid name.
	CodeInvalidHost = "invalid_host"
	// CodeHostNotAllowed means no role of the user covers the host.
	CodeHostNotAllowed = "host_not_allowed"
	// CodeLoginNotAllowed means no role of the user allows the login there.
	CodeLoginNotAllowed = "login_not_allowed"
	// CodeTTLInvalid means a ttl was not a positive duration.
	CodeTTLInvalid = "ttl_invalid"
	// CodeTTLTooLong means a ttl is over the role's (or the token's) maximum.
	CodeTTLTooLong = "ttl_too_long"
	// CodeJustificationMissing means the reason is empty.
	CodeJustificationMissing = "justification_missing"
	// CodeJustificationTooShort means the reason is shorter than the role asks.
	CodeJustificationTooShort = "justification_too_short"
	// CodeJustificationTooLong means the reason is over the length limit.
	CodeJustificationTooLong = "justification_too_long"
	// CodeJustificationInvalid means the reason is invalid UTF-8 or holds
	// control characters.
	CodeJustificationInvalid = "justification_invalid"
	// CodeTicketMismatch means the reason lacks the ticket the role asks for.
	CodeTicketMismatch = "ticket_mismatch"
	// CodeAdminAccessForbidden means admins may not request host access.
	CodeAdminAccessForbidden = "admin_access_forbidden"
	// CodeBreakGlassNotAllowed means no break-glass role covers the request.
	CodeBreakGlassNotAllowed = "break_glass_not_allowed"
	// CodeSelfApproval means an approver tried to approve their own request.
	CodeSelfApproval = "self_approval"
	// CodeNotApprover means the caller may not approve this request.
	CodeNotApprover = "not_approver"
	// CodeNoRole means the user is in no role at all.
	CodeNoRole = "no_role"
)

// Request states: the State of a Request.
const (
	// StatePending means the request waits for approvals.
	StatePending = "pending"
	// StateApproved means the request may be redeemed once for a certificate.
	StateApproved = "approved"
	// StateDenied means an approver refused the request.
	StateDenied = "denied"
	// StateExpired means the wait for approval or redemption ran out.
	StateExpired = "expired"
	// StateCancelled means the requester withdrew the request.
	StateCancelled = "cancelled"
	// StateIssued means a certificate was issued; the request is spent.
	StateIssued = "issued"
)

// Approval decisions: the Decision of an Approval.
const (
	// DecisionApprove is an approver's yes.
	DecisionApprove = "approve"
	// DecisionDeny is an approver's no, which denies the request.
	DecisionDeny = "deny"
)

// Recording purposes: what Client.Recording is asked for, recorded as the
// code of the recording.accessed audit event.
const (
	// PurposeReplay is reading a recording to play it back.
	PurposeReplay = "replay"
	// PurposeExport is copying a recording out.
	PurposeExport = "export"
	// PurposeWatch is following a live session.
	PurposeWatch = "watch"
)

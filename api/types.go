// Package api is the wire of jitd's HTTPS JSON API, versioned under /v1:
// the request and answer types, the error codes and request states, and the
// Go client that the jit CLI uses. The server is package apiserver; both
// share these types, so a field added here is seen by both. This package
// links nothing of the server (no audit store, no policy, no lifecycle), so
// the engineer's binary does not carry the CA.
package api

import (
	"fmt"
	"time"
)

// MaxBodyBytes bounds every request body the server reads, and every error
// body the client reads.
const MaxBodyBytes = 64 << 10

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable machine-readable code and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error is what the client returns for a non-2xx response.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the answer's Retry-After (429 rate_limited, 503), zero
	// when it had none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// HealthResponse answers GET /v1/health.
type HealthResponse struct {
	Status string `json:"status"`
}

// CAResponse answers GET /v1/ca: the CA public keys in authorized_keys form
// and where the bastion listens, if it runs.
type CAResponse struct {
	UserCA      string `json:"user_ca"`
	HostCA      string `json:"host_ca"`
	TargetCA    string `json:"target_ca"`
	Bastion     string `json:"bastion,omitempty"`
	TLSFingerpr string `json:"tls_fingerprint"`
}

// ChallengeRequest starts a login: POST /v1/login/challenge.
type ChallengeRequest struct {
	User string `json:"user"`
}

// ChallengeResponse carries the nonce to sign.
type ChallengeResponse struct {
	Nonce     string    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LoginRequest proves the enrolled key: POST /v1/login. Signature is over
// LoginMessage(user, nonce, tls fingerprint), in SSH wire form, base64.
type LoginRequest struct {
	User      string `json:"user"`
	Nonce     string `json:"nonce"`
	PublicKey string `json:"public_key"`
	Signature string `json:"signature"`
	// TTL asks for a shorter token life than the default; empty means default.
	TTL string `json:"ttl,omitempty"`
}

// LoginResponse carries the bearer token.
type LoginResponse struct {
	Token     string    `json:"token"`
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
	Admin     bool      `json:"admin,omitempty"`
	Auditor   bool      `json:"auditor,omitempty"`
}

// LoginMessage is the exact byte string a client signs to log in. It binds
// the signature to the user, the server's nonce and the TLS certificate the
// client pinned, so it cannot be replayed to another server or relayed.
func LoginMessage(user, nonce, tlsFingerprint string) []byte {
	return []byte("jitssh-login-v1\n" + user + "\n" + nonce + "\n" + tlsFingerprint + "\n")
}

// CreateRequestBody asks for access: POST /v1/requests.
type CreateRequestBody struct {
	// User, when set, must be the token's user; it exists so that a mismatch
	// is refused loudly rather than ignored.
	User       string `json:"user,omitempty"`
	Host       string `json:"host"`
	Login      string `json:"login"`
	Reason     string `json:"reason"`
	TTL        string `json:"ttl,omitempty"`
	PublicKey  string `json:"public_key"`
	BreakGlass bool   `json:"break_glass,omitempty"`
}

// DecisionBody carries an approver's reason: POST /v1/requests/ID/approve|deny.
type DecisionBody struct {
	Reason string `json:"reason,omitempty"`
}

// Request is a request as the API shows it.
type Request struct {
	ID              string     `json:"id"`
	User            string     `json:"user"`
	Host            string     `json:"host"`
	Login           string     `json:"login"`
	Role            string     `json:"role"`
	Reason          string     `json:"reason"`
	State           string     `json:"state"`
	TTL             string     `json:"ttl"`
	BreakGlass      bool       `json:"break_glass,omitempty"`
	ApprovalsNeeded int        `json:"approvals_needed,omitempty"`
	Approvals       []Approval `json:"approvals,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	DecidedAt       *time.Time `json:"decided_at,omitempty"`
	DecidedBy       string     `json:"decided_by,omitempty"`
	DecisionReason  string     `json:"decision_reason,omitempty"`
	RedeemBy        *time.Time `json:"redeem_by,omitempty"`
	Serial          uint64     `json:"serial,omitempty,string"`
}

// Approval is one approver's verdict.
type Approval struct {
	Approver string    `json:"approver"`
	Decision string    `json:"decision"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// RequestResponse answers request operations. Certificate is set when the
// operation issued one, in authorized_keys form.
type RequestResponse struct {
	Request     Request    `json:"request"`
	Certificate string     `json:"certificate,omitempty"`
	ValidAfter  *time.Time `json:"valid_after,omitempty"`
	ValidBefore *time.Time `json:"valid_before,omitempty"`
}

// RequestsResponse answers GET /v1/requests.
type RequestsResponse struct {
	Requests []Request `json:"requests"`
}

// Grant is a certificate the caller holds: GET /v1/grants.
type Grant struct {
	Serial      uint64    `json:"serial,string"`
	RequestID   string    `json:"request_id"`
	Host        string    `json:"host"`
	Login       string    `json:"login"`
	Principals  []string  `json:"principals"`
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
	KeyID       string    `json:"key_id"`
	Revoked     bool      `json:"revoked,omitempty"`
}

// GrantsResponse answers GET /v1/grants.
type GrantsResponse struct {
	Grants []Grant `json:"grants"`
}

// UserBody enrols a user: POST /v1/admin/users.
type UserBody struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	Keys   []string `json:"keys"`
}

// UsersResponse answers GET /v1/admin/users.
type UsersResponse struct {
	Users []UserBody `json:"users"`
}

// RevokeBody revokes a certificate: POST /v1/admin/revoke.
type RevokeBody struct {
	Serial uint64 `json:"serial,string"`
	Reason string `json:"reason"`
}

// Event is one audit event, with stable field names for SIEM ingestion.
type Event struct {
	Seq        int64             `json:"seq"`
	Time       time.Time         `json:"time"`
	Event      string            `json:"event"`
	Code       string            `json:"code,omitempty"`
	Actor      string            `json:"actor,omitempty"`
	User       string            `json:"user,omitempty"`
	Host       string            `json:"host,omitempty"`
	Login      string            `json:"login,omitempty"`
	RequestID  string            `json:"request_id,omitempty"`
	SessionID  string            `json:"sid,omitempty"`
	Serial     uint64            `json:"serial,omitempty,string"`
	ClientAddr string            `json:"client_addr,omitempty"`
	Message    string            `json:"message,omitempty"`
	Data       map[string]string `json:"data,omitempty"`
	Hash       string            `json:"hash"`
}

// EventsResponse answers GET /v1/audit/events.
type EventsResponse struct {
	Events []Event `json:"events"`
}

// VerifyResponse answers GET /v1/audit/verify.
type VerifyResponse struct {
	OK          bool   `json:"ok"`
	Events      int64  `json:"events"`
	Head        string `json:"head"`
	FirstBad    int64  `json:"first_bad_seq,omitempty"`
	Problem     string `json:"problem,omitempty"`
	Recordings  int    `json:"recordings"`
	BadSession  string `json:"bad_session,omitempty"`
	Checkpoints int    `json:"checkpoints"`
	// RecordingsLost names the finished sessions whose recording was lost
	// (end reason recording_lost: jitd stopped while they were live and the
	// recording was gone). A finding reported by name; OK is not false for it.
	RecordingsLost []string `json:"recordings_lost,omitempty"`
}

// Session is a recorded session.
type Session struct {
	ID              string     `json:"id"`
	RequestID       string     `json:"request_id"`
	User            string     `json:"user"`
	Host            string     `json:"host"`
	Login           string     `json:"login"`
	Serial          uint64     `json:"serial,omitempty,string"`
	TargetSerial    uint64     `json:"target_serial,omitempty,string"`
	ClientAddr      string     `json:"client_addr,omitempty"`
	Command         string     `json:"command,omitempty"`
	StartedAt       time.Time  `json:"started_at"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
	ExitStatus      int        `json:"exit_status"`
	BytesIn         int64      `json:"bytes_in"`
	BytesOut        int64      `json:"bytes_out"`
	RecordingSHA256 string     `json:"recording_sha256,omitempty"`
	RecordingSize   int64      `json:"recording_size,omitempty"`
	EndReason       string     `json:"end_reason,omitempty"`
	Live            bool       `json:"live,omitempty"`
	// Replica is the jitd replica whose bastion records the session
	// (empty for sessions from before replicas).
	Replica string `json:"replica,omitempty"`
}

// SessionsResponse answers GET /v1/sessions.
type SessionsResponse struct {
	Sessions []Session `json:"sessions"`
}

// SessionDetail answers GET /v1/sessions/ID: the session with its grant
// and the markers of its recording (the command, file transfers with their
// byte counts, forwarding, the exit status), at most MaxSessionMarkers of
// them, MoreMarkers counting the rest.
type SessionDetail struct {
	Session     Session         `json:"session"`
	Request     *Request        `json:"request,omitempty"`
	Markers     []SessionMarker `json:"markers,omitempty"`
	MoreMarkers int             `json:"more_markers,omitempty"`
}

// MaxSessionMarkers bounds the markers GET /v1/sessions/ID returns; the
// recording (jit sessions export) has them all.
const MaxSessionMarkers = 500

// SessionMarker is one marker of a recording, Offset seconds from the
// session's start.
type SessionMarker struct {
	Offset float64 `json:"offset"`
	Text   string  `json:"text"`
}

// SearchHit is one match of a full-text search.
type SearchHit struct {
	SessionID string  `json:"sid"`
	Offset    float64 `json:"offset"`
	Kind      string  `json:"kind"`
	Snippet   string  `json:"snippet"`
	User      string  `json:"user,omitempty"`
	Host      string  `json:"host,omitempty"`
}

// SearchResponse answers GET /v1/sessions/search.
type SearchResponse struct {
	Hits []SearchHit `json:"hits"`
}

package api

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// States of a certificate in GrantStatus.State.
const (
	CertValid       = "valid"
	CertRevoked     = "revoked"
	CertExpired     = "expired"
	CertNotYetValid = "not_yet_valid"
)

// SessionEndClosed is the EndReason of a session that ended by itself;
// any other reason of an ended session means the bastion cut it.
const SessionEndClosed = "closed"

// GrantStatus answers GET /v1/grants/{serial}: what the daemon knows of
// one of the caller's certificates now.
type GrantStatus struct {
	Grant
	// State is CertValid, CertRevoked, CertExpired or CertNotYetValid.
	State        string     `json:"state"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	// Sessions are the latest sessions opened with the certificate (at
	// most 50), newest first.
	Sessions []GrantSession `json:"sessions"`
}

// GrantSession is one session of a certificate in GrantStatus.
type GrantSession struct {
	ID        string     `json:"id"`
	Host      string     `json:"host"`
	Login     string     `json:"login"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// EndReason is SessionEndClosed for a session that ended by itself,
	// else why the bastion cut it ("certificate revoked").
	EndReason string `json:"end_reason,omitempty"`
}

// Cut reports whether the bastion ended the session rather than the
// session ending by itself.
func (s GrantSession) Cut() bool {
	return s.EndedAt != nil && s.EndReason != "" && s.EndReason != SessionEndClosed
}

// GrantStatus asks the daemon about the certificate serial: revoked,
// expired, and its sessions. A serial the daemon did not issue to the
// caller is a 404 *Error with CodeCertificateUnknown.
func (c *Client) GrantStatus(ctx context.Context, serial uint64) (GrantStatus, error) {
	var out GrantStatus
	return out, c.do(ctx, http.MethodGet, "/v1/grants/"+strconv.FormatUint(serial, 10), nil, &out)
}

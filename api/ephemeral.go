package api

import (
	"context"
	"net/http"
	"time"
)

// Codes of ephemeral accounts on the daemon side (issue 13, acctd).
const (
	// CodeAccountNameTaken refuses an ephemeral request when no free login
	// could be made for it on the host; retrying makes a new one.
	CodeAccountNameTaken = "account_name_taken"
)

// EphemeralAccount is one ephemeral grant's account as jitd records it:
// GET /v1/admin/accounts (admin role) lists those not yet removed, the
// ones whose removal keeps failing first; ?all=true lists removed ones too.
type EphemeralAccount struct {
	Host      string `json:"host"`
	Login     string `json:"login"`
	User      string `json:"user"`
	RequestID string `json:"request_id"`
	// UID is 0 until the account is created.
	UID int `json:"uid,omitempty"`
	// State is planned, created, removing, removed or failed.
	State  string   `json:"state"`
	Groups []string `json:"groups,omitempty"`
	Sudo   []string `json:"sudo,omitempty"`
	Shell  string   `json:"shell"`
	// Attempts counts failed operations since the last success;
	// NextAttempt is when a failed removal is tried again.
	Attempts    int        `json:"attempts,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	PlannedAt   time.Time  `json:"planned_at"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	RemovedAt   *time.Time `json:"removed_at,omitempty"`
}

// AdminAccounts lists the ephemeral accounts (admin role): those not yet
// removed, or every one with all.
func (c *Client) AdminAccounts(ctx context.Context, all bool) ([]EphemeralAccount, error) {
	path := "/v1/admin/accounts"
	if all {
		path += "?all=true"
	}
	var out []EphemeralAccount
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

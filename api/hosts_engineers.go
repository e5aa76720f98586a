package api

import (
	"context"
	"net/http"
)

// HostEntry is one host the caller may request, as GET /v1/hosts lists it.
type HostEntry struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// Logins hold one entry per login and role that grants it, sorted by
	// login.
	Logins []HostLogin `json:"logins"`
}

// HostLogin is a login on a host as one role of the caller grants it.
type HostLogin struct {
	Login string `json:"login"`
	Role  string `json:"role"`
	// Approval is true when the role needs an approver (its auto-approve
	// conditions, if any, may stand in for one).
	Approval bool `json:"approval"`
	// Ticket is true when the reason must carry a ticket reference.
	Ticket bool `json:"ticket"`
	// MaxTTL is the longest lifetime the role grants, as Go prints a
	// duration ("30m0s").
	MaxTTL string `json:"max_ttl"`
	// Ephemeral is true for a one-time account (Login is empty: jitd
	// makes one per grant); request it without a login.
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// Hosts lists the hosts the logged-in caller may request, sorted by name,
// with the logins each of their roles allows: GET /v1/hosts. It names no
// host the caller could not be granted.
func (c *Client) Hosts(ctx context.Context) ([]HostEntry, error) {
	var out []HostEntry
	return out, c.do(ctx, http.MethodGet, "/v1/hosts", nil, &out)
}

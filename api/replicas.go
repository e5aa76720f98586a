package api

import (
	"context"
	"net/http"
	"time"
)

// CodeReplicaUnavailable means the request needs the replica that records a
// live session (its spool holds the growing recording) and that replica is
// down or does not answer (HTTP 503); once the session's recording is
// uploaded any replica serves it.
const CodeReplicaUnavailable = "replica_unavailable"

// Replica is one jitd replica as GET /v1/admin/replicas shows it. Up,
// HeartbeatAgeSeconds and LeaseHolder are judged by the database's clock.
type Replica struct {
	ID           string    `json:"id"`
	AdvertiseURL string    `json:"advertise_url"`
	BastionAddr  string    `json:"bastion_addr,omitempty"`
	Instance     string    `json:"instance"`
	Version      string    `json:"version"`
	PolicySHA256 string    `json:"policy_sha256"`
	StartedAt    time.Time `json:"started_at"`
	// HeartbeatAt is zero for a replica that stopped cleanly.
	HeartbeatAt         time.Time `json:"heartbeat_at"`
	HeartbeatAgeSeconds float64   `json:"heartbeat_age_seconds"`
	Up                  bool      `json:"up"`
	// LeaseHolder: this replica runs the singleton housekeeping
	// (checkpoints, expiry, sweeps).
	LeaseHolder bool `json:"lease_holder"`
	// PolicyDiffers: its policy file differs from that of the replica
	// that answered (each replica reads its own; they should be equal).
	PolicyDiffers bool `json:"policy_differs"`
	// Self: the replica that answered.
	Self bool `json:"self"`
}

// Replicas lists the replicas on the audit store (admin role).
func (c *Client) Replicas(ctx context.Context) ([]Replica, error) {
	var out []Replica
	return out, c.do(ctx, http.MethodGet, "/v1/admin/replicas", nil, &out)
}

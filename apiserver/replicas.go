package apiserver

import (
	"crypto/tls"
	"net/http"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
)

// ReplicaConfig is what the server knows of the replica it runs in.
type ReplicaConfig struct {
	// ID is this replica's ID; empty means replicas are not known (tests
	// of the handlers alone), and nothing is proxied.
	ID string
	// TTL is how long a replica counts as up after its last heartbeat, and
	// the housekeeping lease's term.
	TTL time.Duration
	// LeaseName is the housekeeping lease's name in the store.
	LeaseName string
	// ProxyTLS is the client TLS configuration for the other replicas'
	// APIs: its RootCAs hold this replica's own API certificate, which
	// every replica serves (jit pins one).
	ProxyTLS *tls.Config
}

// handleReplicas is GET /v1/admin/replicas: the registry, judged by the
// database's clock.
func (s *Server) handleReplicas(w http.ResponseWriter, r *http.Request) error {
	reps, now, err := s.cfg.Store.Replicas(r.Context())
	if err != nil {
		return storeError(err)
	}
	leases, err := s.cfg.Store.Leases(r.Context())
	if err != nil {
		return storeError(err)
	}
	holder := ""
	for _, l := range leases {
		if l.Name == s.cfg.Replica.LeaseName {
			holder = l.Holder
		}
	}
	mine := ""
	for _, x := range reps {
		if x.ID == s.cfg.Replica.ID {
			mine = x.PolicySHA256
		}
	}
	out := make([]api.Replica, 0, len(reps))
	for _, x := range reps {
		up := s.replicaUp(x, now)
		rep := api.Replica{ID: x.ID, AdvertiseURL: x.AdvertiseURL, BastionAddr: x.BastionAddr, Instance: x.Instance, Version: x.Version,
			PolicySHA256: x.PolicySHA256, StartedAt: x.StartedAt, HeartbeatAt: x.HeartbeatAt, Up: up,
			LeaseHolder: up && holder != "" && holder == x.Instance, Self: x.ID == s.cfg.Replica.ID,
			PolicyDiffers: up && mine != "" && x.PolicySHA256 != mine}
		if !x.HeartbeatAt.IsZero() {
			rep.HeartbeatAgeSeconds = now.Sub(x.HeartbeatAt).Seconds()
		}
		out = append(out, rep)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// replicaUp reports whether x beat within the TTL of the database's now.
func (s *Server) replicaUp(x audit.Replica, now time.Time) bool {
	return !x.HeartbeatAt.IsZero() && now.Sub(x.HeartbeatAt) < s.cfg.Replica.TTL
}

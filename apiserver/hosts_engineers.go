package apiserver

import (
	"net/http"

	"github.com/jitssh/jitssh/api"
)

// handleHosts lists the hosts the caller may request: GET /v1/hosts. The
// policy in force decides what that is (policy.Requestable); nothing about
// other hosts leaves the daemon.
func (s *Server) handleHosts(w http.ResponseWriter, r *http.Request) error {
	out := []api.HostEntry{}
	for _, h := range s.cfg.Policy.Current().Requestable(callerOf(r).User) {
		e := api.HostEntry{Name: h.Host, Labels: h.Labels, Logins: make([]api.HostLogin, 0, len(h.Logins))}
		if e.Labels == nil {
			e.Labels = map[string]string{}
		}
		for _, l := range h.Logins {
			e.Logins = append(e.Logins, api.HostLogin{Login: l.Login, Role: l.Role, Approval: l.Approval, Ticket: l.Ticket, MaxTTL: l.MaxTTL.String(), Ephemeral: l.Ephemeral})
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

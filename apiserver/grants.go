package apiserver

import (
	"net/http"
	"strconv"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
)

// handleGrantStatus answers what the daemon knows of one of the caller's
// certificates: GET /v1/grants/{serial}.
func (s *Server) handleGrantStatus(w http.ResponseWriter, r *http.Request) error {
	serial, err := strconv.ParseUint(r.PathValue("serial"), 10, 64)
	if err != nil || serial == 0 {
		return wireErr(http.StatusBadRequest, api.CodeInvalidRequest, "serial %q must be a non-zero decimal number", r.PathValue("serial"))
	}
	st, err := s.cfg.Grants.GrantStatus(r.Context(), callerOf(r), serial)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toGrantStatus(st))
	return nil
}

func toGrantStatus(st grant.CertStatus) api.GrantStatus {
	c := st.Certificate
	out := api.GrantStatus{
		Grant: api.Grant{Serial: c.Serial, RequestID: c.RequestID, Host: c.Host, Login: c.Login, Principals: c.Principals,
			ValidAfter: c.ValidAfter, ValidBefore: c.ValidBefore, KeyID: c.KeyID, Revoked: !c.RevokedAt.IsZero()},
		State: st.State, RevokedAt: timePtr(c.RevokedAt), RevokeReason: c.RevokeReason, Sessions: []api.GrantSession{},
	}
	for _, ss := range st.Sessions {
		out.Sessions = append(out.Sessions, api.GrantSession{ID: ss.ID, Host: ss.Host, Login: ss.Login,
			StartedAt: ss.StartedAt, EndedAt: timePtr(ss.EndedAt), EndReason: ss.EndReason})
	}
	return out
}

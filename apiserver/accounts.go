package apiserver

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

func (s *Server) accountRoutes() {
	s.route("GET /v1/admin/accounts", s.role(grant.RoleAdmin, s.handleAdminAccounts))
}

// handleAdminAccounts lists ephemeral accounts: stuck removals first
// (most attempts), then by host and login.
func (s *Server) handleAdminAccounts(w http.ResponseWriter, r *http.Request) error {
	states := []string{audit.AccountPlanned, audit.AccountCreated, audit.AccountRemoving, audit.AccountFailed}
	switch r.URL.Query().Get("all") {
	case "", "false":
	case "true":
		states = nil
	default:
		return wireErr(http.StatusBadRequest, api.CodeInvalidRequest, "all %q must be true or false", r.URL.Query().Get("all"))
	}
	list, err := s.cfg.Store.Accounts(r.Context(), states...)
	if err != nil {
		return err
	}
	slices.SortStableFunc(list, func(a, b audit.Account) int {
		return cmp.Compare(b.Attempts*boolInt(b.State == audit.AccountRemoving), a.Attempts*boolInt(a.State == audit.AccountRemoving))
	})
	out := make([]api.EphemeralAccount, 0, len(list))
	for _, a := range list {
		out = append(out, api.EphemeralAccount{Host: a.Host, Login: a.Login, User: a.User, RequestID: a.RequestID, UID: a.UID, State: a.State,
			Groups: a.Groups, Sudo: a.Sudo, Shell: a.Shell, Attempts: a.Attempts, NextAttempt: timePtr(a.NextAttempt), LastError: a.LastError,
			PlannedAt: a.PlannedAt, CreatedAt: timePtr(a.CreatedAt), RemovedAt: timePtr(a.RemovedAt)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

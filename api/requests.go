package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var body CreateRequestBody
	if !decode(w, r, &body) {
		_ = s.audited(r.Context(), audit.Event{Type: "request.denied", Code: "bad_body", Actor: c.User, User: c.User, ClientAddr: c.ClientAddr, Message: "malformed request body"})
		return
	}
	if body.User != "" && body.User != c.User {
		msg := fmt.Sprintf("token belongs to %q but the body names %q", c.User, body.User)
		_ = s.audited(r.Context(), audit.Event{Type: "request.denied", Code: "user_mismatch", Actor: c.User, User: c.User, ClientAddr: c.ClientAddr, Message: clean(msg)})
		writeError(w, http.StatusForbidden, "user_mismatch", msg)
		return
	}
	ttl, err := parseTTL("ttl", body.TTL)
	if err != nil {
		_ = s.audited(r.Context(), audit.Event{Type: "request.denied", Code: "ttl_invalid", Actor: c.User, User: c.User, Host: clean(body.Host), ClientAddr: c.ClientAddr, Message: clean(err.Error())})
		writeError(w, http.StatusBadRequest, "ttl_invalid", err.Error())
		return
	}
	res, err := s.cfg.Grants.Create(r.Context(), c, grant.CreateRequest{
		Host: body.Host, Login: body.Login, Justification: body.Reason, TTL: ttl,
		PublicKey: body.PublicKey, BreakGlass: body.BreakGlass,
	})
	if err != nil {
		s.writeGrantError(w, err)
		return
	}
	status := http.StatusCreated
	if res.Certificate == nil {
		status = http.StatusAccepted
	}
	writeJSON(w, status, toResponse(res))
}

func (s *Server) handleGetRequest(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Grants.Get(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		s.writeGrantError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toResponse(res))
}

func (s *Server) handleListRequests(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rs, err := s.cfg.Grants.List(r.Context(), callerOf(r), grant.ListOptions{
		Pending:    q.Get("pending") == "true",
		BreakGlass: q.Get("break_glass") == "true",
		Limit:      500,
	})
	if err != nil {
		s.writeGrantError(w, err)
		return
	}
	out := RequestsResponse{Requests: []Request{}}
	for _, req := range rs {
		out.Requests = append(out.Requests, toRequest(req, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	s.decision(w, r, s.cfg.Grants.Approve)
}

func (s *Server) handleDeny(w http.ResponseWriter, r *http.Request) {
	s.decision(w, r, s.cfg.Grants.Deny)
}

func (s *Server) decision(w http.ResponseWriter, r *http.Request, op func(ctx context.Context, c grant.Caller, id, reason string) (grant.Result, error)) {
	var body DecisionBody
	if !decode(w, r, &body) {
		return
	}
	res, err := op(r.Context(), callerOf(r), r.PathValue("id"), body.Reason)
	if err != nil {
		s.writeGrantError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toResponse(res))
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Grants.Cancel(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		s.writeGrantError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toResponse(res))
}

func (s *Server) handleRedeem(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Grants.Redeem(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		s.writeGrantError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, toResponse(res))
}

func (s *Server) handleGrants(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	certs, err := s.cfg.Store.Certificates(r.Context(), audit.CertificateFilter{User: c.User, Kind: "user", ValidAt: s.now(), Limit: 500})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	out := GrantsResponse{Grants: []Grant{}}
	for _, ct := range certs {
		out.Grants = append(out.Grants, Grant{
			Serial: ct.Serial, RequestID: ct.RequestID, Host: ct.Host, Login: ct.Login, Principals: ct.Principals,
			ValidAfter: ct.ValidAfter, ValidBefore: ct.ValidBefore, KeyID: ct.KeyID, Revoked: !ct.RevokedAt.IsZero(),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func toResponse(res grant.Result) RequestResponse {
	out := RequestResponse{Request: toRequest(res.Request, res.Approvals)}
	if res.Certificate != nil {
		out.Certificate = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(res.Certificate)))
		va := time.Unix(int64(res.Certificate.ValidAfter), 0).UTC()
		vb := time.Unix(int64(res.Certificate.ValidBefore), 0).UTC()
		out.ValidAfter, out.ValidBefore = &va, &vb
	}
	return out
}

func toRequest(r audit.Request, approvals []audit.Approval) Request {
	out := Request{
		ID: r.ID, User: r.User, Host: r.Host, Login: r.Login, Role: r.Role, Reason: r.Justification,
		State: r.State, TTL: r.TTL.String(), BreakGlass: r.BreakGlass, ApprovalsNeeded: r.ApprovalsNeeded,
		CreatedAt: r.CreatedAt, ExpiresAt: timePtr(r.ExpiresAt), DecidedAt: timePtr(r.DecidedAt),
		DecidedBy: r.DecidedBy, DecisionReason: r.DecisionReason, RedeemBy: timePtr(r.RedeemBy), Serial: r.Serial,
	}
	for _, a := range approvals {
		out.Approvals = append(out.Approvals, Approval{Approver: a.Approver, Decision: a.Decision, Reason: a.Reason, Time: a.Time})
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

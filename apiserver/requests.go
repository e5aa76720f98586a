package apiserver

import (
	"context"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	var body api.CreateRequestBody
	if err := decode(w, r, &body); err != nil {
		return s.cfg.Grants.RefuseUnreadable(r.Context(), c, err)
	}
	res, err := s.cfg.Grants.Submit(r.Context(), c, grant.Submission{
		User: body.User, Host: body.Host, Login: body.Login, Justification: body.Reason, TTL: body.TTL,
		PublicKey: body.PublicKey, BreakGlass: body.BreakGlass, IdempotencyKey: idempotencyKey(r),
	})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Certificate == nil {
		status = http.StatusAccepted
	}
	writeJSON(w, status, toResponse(res))
	return nil
}

// idempotencyKey is the request's Idempotency-Key header. A header sent
// but empty, or sent twice, is passed on as a key grant refuses, rather than
// as no key: the client asked for idempotency and must not silently lose it.
func idempotencyKey(r *http.Request) string {
	vs, ok := r.Header[api.IdempotencyKeyHeader]
	switch {
	case !ok:
		return ""
	case len(vs) != 1 || vs[0] == "":
		return "\x00"
	}
	return vs[0]
}

func (s *Server) handleGetRequest(w http.ResponseWriter, r *http.Request) error {
	res, err := s.cfg.Grants.Get(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toResponse(res))
	return nil
}

func (s *Server) handleListRequests(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	rs, err := s.cfg.Grants.List(r.Context(), callerOf(r), grant.ListOptions{
		Pending:    q.Get("pending") == "true",
		BreakGlass: q.Get("break_glass") == "true",
		Limit:      500,
	})
	if err != nil {
		return err
	}
	out := api.RequestsResponse{Requests: []api.Request{}}
	for _, req := range rs {
		out.Requests = append(out.Requests, toRequest(req, nil))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) error {
	return s.decision(w, r, s.cfg.Grants.Approve)
}

func (s *Server) handleDeny(w http.ResponseWriter, r *http.Request) error {
	return s.decision(w, r, s.cfg.Grants.Deny)
}

func (s *Server) decision(w http.ResponseWriter, r *http.Request, op func(ctx context.Context, c grant.Caller, id, reason string) (grant.Result, error)) error {
	var body api.DecisionBody
	if err := decode(w, r, &body); err != nil {
		return err
	}
	res, err := op(r.Context(), callerOf(r), r.PathValue("id"), body.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toResponse(res))
	return nil
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) error {
	res, err := s.cfg.Grants.Cancel(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toResponse(res))
	return nil
}

func (s *Server) handleRedeem(w http.ResponseWriter, r *http.Request) error {
	res, err := s.cfg.Grants.Redeem(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toResponse(res))
	return nil
}

func (s *Server) handleGrants(w http.ResponseWriter, r *http.Request) error {
	c := callerOf(r)
	certs, err := s.cfg.Store.Certificates(r.Context(), audit.CertificateFilter{User: c.User, Kind: "user", ValidAt: s.now(), Limit: 500})
	if err != nil {
		return storeError(err)
	}
	out := api.GrantsResponse{Grants: []api.Grant{}}
	for _, ct := range certs {
		out.Grants = append(out.Grants, api.Grant{
			Serial: ct.Serial, RequestID: ct.RequestID, Host: ct.Host, Login: ct.Login, Principals: ct.Principals,
			ValidAfter: ct.ValidAfter, ValidBefore: ct.ValidBefore, KeyID: ct.KeyID, Revoked: !ct.RevokedAt.IsZero(),
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func toResponse(res grant.Result) api.RequestResponse {
	out := api.RequestResponse{Request: toRequest(res.Request, res.Approvals)}
	if res.Certificate != nil {
		out.Certificate = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(res.Certificate)))
		va := time.Unix(int64(res.Certificate.ValidAfter), 0).UTC()
		vb := time.Unix(int64(res.Certificate.ValidBefore), 0).UTC()
		out.ValidAfter, out.ValidBefore = &va, &vb
	}
	return out
}

func toRequest(r audit.Request, approvals []audit.Approval) api.Request {
	out := api.Request{
		ID: r.ID, User: r.User, Host: r.Host, Login: r.Login, Role: r.Role, Reason: r.Justification,
		State: r.State, TTL: r.TTL.String(), BreakGlass: r.BreakGlass, ApprovalsNeeded: r.ApprovalsNeeded,
		CreatedAt: r.CreatedAt, ExpiresAt: timePtr(r.ExpiresAt), DecidedAt: timePtr(r.DecidedAt),
		DecidedBy: r.DecidedBy, DecisionReason: r.DecisionReason, RedeemBy: timePtr(r.RedeemBy), Serial: r.Serial,
	}
	for _, a := range approvals {
		out.Approvals = append(out.Approvals, api.Approval{Approver: a.Approver, Decision: a.Decision, Reason: a.Reason, Time: a.Time})
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

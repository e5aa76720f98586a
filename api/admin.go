package api

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/policy"
)

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	pol := s.cfg.Policy.Current()
	out := UsersResponse{Users: []UserBody{}}
	for _, name := range slices.Sorted(maps.Keys(pol.Users)) {
		u := pol.Users[name]
		body := UserBody{Name: u.Name, Groups: u.Groups, Keys: []string{}}
		for _, k := range u.Keys {
			body.Keys = append(body.Keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
		}
		out.Users = append(out.Users, body)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAddUser(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var body UserBody
	if !decode(w, r, &body) {
		return
	}
	if err := policy.ValidName("user", body.Name); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_user", err.Error())
		return
	}
	if len(body.Keys) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_public_key", "at least one key is required")
		return
	}
	for _, g := range body.Groups {
		if err := policy.ValidName("group", g); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_group", err.Error())
			return
		}
	}
	var keys []string
	for i, k := range body.Keys {
		key, err := ca.ParseRequestKey(k)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_public_key", fmt.Sprintf("keys[%d]: %v", i, err))
			return
		}
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	}
	if u, inFile := s.cfg.Policy.Current().User(body.Name); inFile && len(body.Groups) > 0 && !slices.Equal(u.Groups, body.Groups) && !s.enrolled(r, body.Name) {
		writeError(w, http.StatusConflict, "groups_in_policy", fmt.Sprintf("the groups of %q are set in the policy file; enrol keys without --group", body.Name))
		return
	}
	now := s.now()
	err := s.cfg.Store.Do(r.Context(), func(tx *audit.Tx) error {
		if err := tx.PutUser(audit.User{Name: body.Name, Groups: body.Groups, Keys: keys, CreatedAt: now, CreatedBy: c.User}); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "admin.user.add", Code: "ok", Actor: c.User, User: body.Name, ClientAddr: c.ClientAddr,
			Data: map[string]string{"groups": strings.Join(body.Groups, ","), "keys": strconv.Itoa(len(keys))}})
		return err
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	if err := s.cfg.Policy.RefreshUsers(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, "refresh_failed", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, UserBody{Name: body.Name, Groups: body.Groups, Keys: keys})
}

// enrolled reports whether name was enrolled through the API rather than
// written in the policy file.
func (s *Server) enrolled(r *http.Request, name string) bool {
	users, err := s.cfg.Store.Users(r.Context())
	if err != nil {
		return false
	}
	for _, u := range users {
		if u.Name == name {
			return true
		}
	}
	return false
}

func (s *Server) handleRemoveUser(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	name := r.PathValue("name")
	if !s.enrolled(r, name) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no enrolled user %q (users in the policy file are removed there)", name))
		return
	}
	err := s.cfg.Store.Do(r.Context(), func(tx *audit.Tx) error {
		if err := tx.DeleteUser(name); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: s.now(), Type: "admin.user.remove", Code: "ok", Actor: c.User, User: name, ClientAddr: c.ClientAddr})
		return err
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	if err := s.cfg.Policy.RefreshUsers(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, "refresh_failed", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	if err := s.cfg.Policy.Reload(r.Context()); err != nil {
		_ = s.audited(r.Context(), audit.Event{Type: "policy.reload", Code: "failed", Actor: c.User, ClientAddr: c.ClientAddr, Message: err.Error()})
		writeError(w, http.StatusBadRequest, "policy_invalid", err.Error())
		return
	}
	_ = s.audited(r.Context(), audit.Event{Type: "policy.reload", Code: "ok", Actor: c.User, ClientAddr: c.ClientAddr})
	writeJSON(w, http.StatusOK, HealthResponse{Status: "reloaded"})
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var body RevokeBody
	if !decode(w, r, &body) {
		return
	}
	if body.Reason == "" {
		writeError(w, http.StatusBadRequest, "reason_missing", "reason is required to revoke a certificate")
		return
	}
	now := s.now()
	err := s.cfg.Store.Do(r.Context(), func(tx *audit.Tx) error {
		if err := tx.RevokeCertificate(body.Serial, now, body.Reason); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "cert.revoked", Code: "ok", Actor: c.User, Serial: body.Serial, ClientAddr: c.ClientAddr, Message: clean(body.Reason)})
		return err
	})
	if errors.Is(err, audit.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no certificate with serial %d", body.Serial))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, HealthResponse{Status: "revoked"})
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := audit.EventFilter{User: q.Get("user"), Host: q.Get("host"), Type: q.Get("event"), RequestID: q.Get("request"), SessionID: q.Get("sid"), Limit: 1000}
	var err error
	if f.Since, f.Until, err = s.timeRange(q); err != nil {
		writeError(w, http.StatusBadRequest, "bad_time", err.Error())
		return
	}
	if v := q.Get("after"); v != "" {
		if f.AfterSeq, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "bad_after", fmt.Sprintf("after %q is not a sequence number", v))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "bad_limit", fmt.Sprintf("limit %q must be 1 to 10000", v))
			return
		}
		f.Limit = n
	}
	evs, err := s.cfg.Store.Events(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable")
		return
	}
	out := EventsResponse{Events: make([]Event, 0, len(evs))}
	for _, e := range evs {
		out.Events = append(out.Events, Event{
			Seq: e.Seq, Time: e.Time, Event: e.Type, Code: e.Code, Actor: e.Actor, User: e.User, Host: e.Host, Login: e.Login,
			RequestID: e.RequestID, SessionID: e.SessionID, Serial: e.Serial, ClientAddr: e.ClientAddr, Message: e.Message, Data: e.Data, Hash: e.Hash,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Store.Verify(r.Context(), audit.VerifyOptions{CheckpointKey: s.cfg.CheckpointKey, Recordings: s.cfg.Recordings})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, grant.CodeAuditUnavailable, "audit store unavailable: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, VerifyResponse{OK: res.OK, Events: res.Events, Head: res.Head, FirstBad: res.FirstBad, Problem: res.Problem,
		Recordings: res.Recordings, BadSession: res.BadSession, Checkpoints: res.Checkpoints})
}

// timeRange reads the since and until query parameters.
func (s *Server) timeRange(q url.Values) (since, until time.Time, err error) {
	if since, err = s.parseTimeParam(q.Get("since")); err != nil {
		return since, until, fmt.Errorf("since: %w", err)
	}
	if until, err = s.parseTimeParam(q.Get("until")); err != nil {
		return since, until, fmt.Errorf("until: %w", err)
	}
	return since, until, nil
}

// parseTimeParam accepts RFC 3339 times and durations back from now ("1h").
func (s *Server) parseTimeParam(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return s.now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 nor a duration such as 2h", v)
}

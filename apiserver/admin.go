package apiserver

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) error {
	pol := s.cfg.Policy.Current()
	out := api.UsersResponse{Users: []api.UserBody{}}
	for _, name := range slices.Sorted(maps.Keys(pol.Users)) {
		u := pol.Users[name]
		body := api.UserBody{Name: u.Name, Groups: u.Groups, Keys: []string{}}
		for _, k := range u.Keys {
			body.Keys = append(body.Keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
		}
		out.Users = append(out.Users, body)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleAddUser(w http.ResponseWriter, r *http.Request) error {
	var body api.UserBody
	if err := decode(w, r, &body); err != nil {
		return err
	}
	u, err := s.admin.Enrol(r.Context(), callerOf(r), grant.Enrolment{Name: body.Name, Groups: body.Groups, Keys: body.Keys})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.UserBody{Name: u.Name, Groups: u.Groups, Keys: u.Keys})
	return nil
}

func (s *Server) handleRemoveUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.admin.Unenrol(r.Context(), callerOf(r), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.admin.ReloadPolicy(r.Context(), callerOf(r)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.HealthResponse{Status: "reloaded"})
	return nil
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	var body api.RevokeBody
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := s.admin.Revoke(r.Context(), callerOf(r), body.Serial, body.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.HealthResponse{Status: "revoked"})
	return nil
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := audit.EventFilter{User: q.Get("user"), Host: q.Get("host"), Type: q.Get("event"), RequestID: q.Get("request"), SessionID: q.Get("sid"), Limit: 1000}
	var err error
	if f.Since, f.Until, err = s.timeRange(q); err != nil {
		return err
	}
	if v := q.Get("after"); v != "" {
		if f.AfterSeq, err = strconv.ParseInt(v, 10, 64); err != nil {
			return wireErr(http.StatusBadRequest, api.CodeBadAfter, "after %q is not a sequence number", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return wireErr(http.StatusBadRequest, api.CodeBadLimit, "limit %q must be 1 to 10000", v)
		}
		f.Limit = n
	}
	evs, err := s.cfg.Store.Events(r.Context(), f)
	if err != nil {
		return storeError(err)
	}
	out := api.EventsResponse{Events: make([]api.Event, 0, len(evs))}
	for _, e := range evs {
		out.Events = append(out.Events, api.Event{
			Seq: e.Seq, Time: e.Time, Event: e.Type, Code: e.Code, Actor: e.Actor, User: e.User, Host: e.Host, Login: e.Login,
			RequestID: e.RequestID, SessionID: e.SessionID, Serial: e.Serial, ClientAddr: e.ClientAddr, Message: e.Message, Data: e.Data, Hash: e.Hash,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) error {
	res, err := s.cfg.Store.Verify(r.Context(), audit.VerifyOptions{CheckpointKey: s.cfg.CheckpointKey, Recordings: s.cfg.Recordings})
	if err != nil {
		return &wireError{status: http.StatusServiceUnavailable, code: api.CodeAuditUnavailable, message: "audit store unavailable: " + err.Error()}
	}
	writeJSON(w, http.StatusOK, api.VerifyResponse{OK: res.OK, Events: res.Events, Head: res.Head, FirstBad: res.FirstBad, Problem: res.Problem,
		Recordings: res.Recordings, BadSession: res.BadSession, Checkpoints: res.Checkpoints, RecordingsLost: res.Lost})
	return nil
}

// timeRange reads the since and until query parameters.
func (s *Server) timeRange(q url.Values) (since, until time.Time, err error) {
	if since, err = s.parseTimeParam(q.Get("since")); err != nil {
		return since, until, wireErr(http.StatusBadRequest, api.CodeBadTime, "since: %v", err)
	}
	if until, err = s.parseTimeParam(q.Get("until")); err != nil {
		return since, until, wireErr(http.StatusBadRequest, api.CodeBadTime, "until: %v", err)
	}
	return since, until, nil
}

// parseTimeParam accepts RFC 3339 times and durations back from now ("1h").
func (s *Server) parseTimeParam(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		d, derr := time.ParseDuration(v)
		if derr != nil || d <= 0 {
			return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 nor a duration such as 2h", v)
		}
		t = s.now().Add(-d)
	}
	// A time the store cannot compare with is the client's mistake.
	if !audit.StorableTime(t) {
		return time.Time{}, fmt.Errorf("time %q is outside the years 1678 to 2261", v)
	}
	return t, nil
}

package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
)

// TestAdapter checks the one place where handler errors become answers:
// each domain Kind and each wire error has its status, and the body carries
// the code and message, except for internal errors, whose detail stays in
// the log.
func TestAdapter(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		status      int
		code, msg   string
		notInAnswer string
	}{
		{name: "invalid", err: &grant.Error{Kind: grant.KindInvalid, Code: api.CodeInvalidPublicKey, Message: "key is bad"}, status: 400, code: "invalid_public_key", msg: "key is bad"},
		{name: "unauthenticated", err: &grant.Error{Kind: grant.KindUnauthenticated, Code: api.CodeBadSignature, Message: "no"}, status: 401, code: "bad_signature", msg: "no"},
		{name: "denied", err: &grant.Error{Kind: grant.KindDenied, Code: api.CodeHostNotAllowed, Message: "not db1"}, status: 403, code: "host_not_allowed", msg: "not db1"},
		{name: "forbidden", err: &grant.Error{Kind: grant.KindForbidden, Code: api.CodeNotAdmin, Message: "needs admin"}, status: 403, code: "not_admin", msg: "needs admin"},
		{name: "not found", err: &grant.Error{Kind: grant.KindNotFound, Code: api.CodeNotFound, Message: "no req_1"}, status: 404, code: "not_found", msg: "no req_1"},
		{name: "conflict", err: &grant.Error{Kind: grant.KindConflict, Code: api.CodeNotPending, Message: "issued"}, status: 409, code: "not_pending", msg: "issued"},
		{name: "unavailable", err: &grant.Error{Kind: grant.KindUnavailable, Code: api.CodeAuditUnavailable, Message: "audit store unavailable", Err: errors.New("disk full")},
			status: 503, code: "audit_unavailable", msg: "audit store unavailable", notInAnswer: "disk full"},
		{name: "internal kind", err: &grant.Error{Kind: grant.KindInternal, Code: api.CodeRefreshFailed, Message: "refresh failed"}, status: 500, code: "refresh_failed", msg: "refresh failed"},
		{name: "unknown kind", err: &grant.Error{Kind: grant.Kind(99), Code: "odd", Message: "odd"}, status: 500, code: "odd", msg: "odd"},
		{name: "wrapped domain error", err: fmt.Errorf("approve: %w", &grant.Error{Kind: grant.KindConflict, Code: api.CodeAlreadyDecided, Message: "twice"}), status: 409, code: "already_decided", msg: "twice"},
		{name: "wire error", err: wireErr(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "over %d", 10), status: 413, code: "body_too_large", msg: "over 10"},
		{name: "store error", err: storeError(errors.New("database is locked")), status: 503, code: "audit_unavailable", msg: "audit store unavailable", notInAnswer: "locked"},
		{name: "plain error", err: errors.New("draw token: entropy gone"), status: 500, code: "internal", msg: "internal error", notInAnswer: "entropy"},
	}
	s := &Server{cfg: Config{Logger: slog.New(slog.DiscardHandler)}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.handle(func(http.ResponseWriter, *http.Request) error { return tc.err })(rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil))
			if rec.Code != tc.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var body api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if body.Error.Code != tc.code || body.Error.Message != tc.msg {
				t.Errorf("body = %+v, want code %q message %q", body.Error, tc.code, tc.msg)
			}
			if tc.notInAnswer != "" && strings.Contains(rec.Body.String(), tc.notInAnswer) {
				t.Errorf("answer %q leaks %q", rec.Body.String(), tc.notInAnswer)
			}
		})
	}
	t.Run("success is left alone", func(t *testing.T) {
		rec := httptest.NewRecorder()
		s.handle(func(w http.ResponseWriter, _ *http.Request) error {
			w.WriteHeader(http.StatusNoContent)
			return nil
		})(rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil))
		if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Errorf("got %d %q, want 204 and no body", rec.Code, rec.Body.String())
		}
	})
}

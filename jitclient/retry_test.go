package jitclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/jitssh/jitssh/api"
)

// Only failures that may go away are retried: no answer, a gateway's or
// the daemon's 5xx that means "try again", the first attempt in flight;
// never a refusal, and never the caller's own end.
func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "connection cut", err: fmt.Errorf("POST /v1/requests: %w", errors.New("unexpected EOF")), want: true},
		{name: "bad gateway", err: &api.Error{Status: http.StatusBadGateway, Code: api.CodeHTTPError}, want: true},
		{name: "unavailable", err: &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeAuditUnavailable}, want: true},
		{name: "gateway timeout", err: &api.Error{Status: http.StatusGatewayTimeout, Code: api.CodeHTTPError}, want: true},
		{name: "in flight", err: &api.Error{Status: http.StatusConflict, Code: api.CodeIdempotencyKeyInFlight}, want: true},
		{name: "key reused", err: &api.Error{Status: http.StatusConflict, Code: api.CodeIdempotencyKeyReused}},
		{name: "denied", err: &api.Error{Status: http.StatusForbidden, Code: api.CodeHostNotAllowed}},
		{name: "internal", err: &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal}},
		{name: "cancelled", err: fmt.Errorf("POST: %w", context.Canceled)},
		{name: "deadline", err: fmt.Errorf("POST: %w", context.DeadlineExceeded)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := transient(tc.err); got != tc.want {
				t.Fatalf("transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

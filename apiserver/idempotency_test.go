package apiserver_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
)

// Over the wire: the same Idempotency-Key answers 201 with the same
// certificate and makes one; a different body is 409; a bad key is 400.
func TestIdempotencyKeyHeader(t *testing.T) {
	e := newEnv(t, 1)
	alice := e.client("alice")
	ctx := context.Background()
	body := api.CreateRequestBody{Host: "web1", Login: "deploy", Reason: "deploy release 42", PublicKey: freshKey(t)}
	first, err := alice.CreateRequestIdempotent(ctx, body, "k1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := alice.CreateRequestIdempotent(ctx, body, "k1")
	if err != nil || again.Request.ID != first.Request.ID || again.Certificate != first.Certificate || first.Certificate == "" {
		t.Fatalf("retry: %v, request %s; want request %s with the same certificate", err, again.Request.ID, first.Request.ID)
	}
	if n := e.certCount(); n != 1 {
		t.Fatalf("%d certificates, want 1", n)
	}
	tests := []struct {
		name   string
		key    string
		reason string
		status int
		code   string
	}{
		{name: "different body", key: "k1", reason: "another reason entirely", status: http.StatusConflict, code: api.CodeIdempotencyKeyReused},
		{name: "empty key", key: "", status: http.StatusBadRequest, code: api.CodeInvalidIdempotencyKey},
		{name: "long key", key: strings.Repeat("k", 256), status: http.StatusBadRequest, code: api.CodeInvalidIdempotencyKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := body
			if tc.reason != "" {
				b.Reason = tc.reason
			}
			_, err := alice.CreateRequestIdempotent(ctx, b, tc.key)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.code {
				t.Fatalf("err = %v, want %d %s", err, tc.status, tc.code)
			}
		})
	}
}

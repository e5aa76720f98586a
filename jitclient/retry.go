package jitclient

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jitssh/jitssh/api"
)

// createAttempts bounds how often one jit request sends its request: a
// lost answer, a restarting daemon or a proxy's 502/503/504 is retried with
// the same Idempotency-Key, so a retry never makes a second request.
const createAttempts = 4

// createBackoff is the wait before the second attempt; it doubles for each
// further one (0.5 s, 1 s, 2 s: 3.5 s at most in all).
const createBackoff = 500 * time.Millisecond

// newIdempotencyKey returns 26 random base32 characters (130 bits).
func newIdempotencyKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("draw idempotency key: %w", err)
	}
	return base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]), nil
}

// create sends body with one Idempotency-Key, retrying transient failures
// a bounded number of times with backoff.
func (c *Client) create(ctx context.Context, body api.CreateRequestBody) (api.RequestResponse, error) {
	key, err := newIdempotencyKey()
	if err != nil {
		return api.RequestResponse{}, err
	}
	wait := c.Backoff
	if wait <= 0 {
		wait = createBackoff
	}
	for attempt := 1; ; attempt++ {
		res, err := c.API.CreateRequestIdempotent(ctx, body, key)
		if err == nil || attempt == createAttempts || !transient(err) {
			return res, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return api.RequestResponse{}, fmt.Errorf("retry request after %v: %w", err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// transient reports whether err may go away on a retry: no answer at all
// (the connection failed or was cut), a gateway's 502/503/504 or the
// daemon's 503, or the first attempt still being issued.
func transient(err error) bool {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch ae.Status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return ae.Code == api.CodeIdempotencyKeyInFlight
}

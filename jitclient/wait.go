package jitclient

import (
	"context"
	"fmt"
	"time"

	"github.com/jitssh/jitssh/api"
)

// DeniedError means an approver denied the request being waited for.
type DeniedError struct{ Request api.Request }

func (e *DeniedError) Error() string {
	r := e.Request
	return fmt.Sprintf("request %s denied by %s: %s", r.ID, r.DecidedBy, r.DecisionReason)
}

// EndedError means the request expired, was cancelled, or was already
// redeemed while it was waited for: there is nothing left to wait for.
// Cause, when set, is the daemon's refusal to redeem a request whose
// state could not be read again.
type EndedError struct {
	Request api.Request
	Cause   error
}

func (e *EndedError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("request %s cannot be redeemed: %v", e.Request.ID, e.Cause)
	}
	if e.Request.State == api.StateIssued {
		return fmt.Sprintf("request %s was already redeemed", e.Request.ID)
	}
	return fmt.Sprintf("request %s %s", e.Request.ID, e.Request.State)
}

// StoppedError means the wait ended before a decision: the request is
// still pending and can be resumed. Interrupted tells the caller's context
// ending (Ctrl-C) from the wait's own timeout.
type StoppedError struct {
	ID          string
	Interrupted bool
}

func (e *StoppedError) Error() string {
	if e.Interrupted {
		return fmt.Sprintf("stopped waiting; request %s is still pending. Resume with: jit wait %s", e.ID, e.ID)
	}
	return fmt.Sprintf("timed out waiting for approval; request %s is still pending. Resume with: jit wait %s", e.ID, e.ID)
}

// WaitOptions says how long to wait and whom to tell how it goes.
type WaitOptions struct {
	// Timeout ends the wait with a StoppedError; zero waits as long as the
	// caller's context lives.
	Timeout time.Duration
	// Waiting, when set, is called once before the first poll.
	Waiting func(api.Request)
	// Polled, when set, is called with every answer, the approved one
	// included, before the outcome is acted on.
	Polled func(api.Request)
	// Approved, when set, is called after Polled with the approved
	// request, before it is redeemed.
	Approved func(api.Request)
}

// Wait polls the pending request req until it is approved, then redeems
// it and returns the certificate. A denial ends it with *DeniedError, an
// expired, cancelled or already redeemed request with *EndedError, and the
// timeout or the end of ctx with *StoppedError (the request stays pending).
func (c *Client) Wait(ctx context.Context, req api.Request, o WaitOptions) (api.RequestResponse, error) {
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if o.Timeout > 0 {
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
	}
	defer cancel()
	if o.Waiting != nil {
		o.Waiting(req)
	}
	tick := time.NewTicker(c.poll())
	defer tick.Stop()
	for {
		res, err := c.API.Request(wctx, req.ID)
		// An error caused by the wait ending is not the daemon's: it is
		// reported as the stop below.
		if err != nil && wctx.Err() == nil {
			return res, err
		}
		if err == nil {
			if o.Polled != nil {
				o.Polled(res.Request)
			}
			if done, err := decided(res.Request); done {
				if err != nil {
					return res, err
				}
				if o.Approved != nil {
					o.Approved(res.Request)
				}
				return c.redeem(ctx, res.Request.ID)
			}
		}
		select {
		case <-wctx.Done():
			return api.RequestResponse{}, &StoppedError{ID: req.ID, Interrupted: ctx.Err() != nil}
		case <-tick.C:
		}
	}
}

// decided says whether the wait is over in state r.State: approved (done,
// nil) or one of the ends that leave nothing to redeem (done, the error).
func decided(r api.Request) (bool, error) {
	switch r.State {
	case api.StateApproved:
		return true, nil
	case api.StateDenied:
		return true, &DeniedError{Request: r}
	case api.StateExpired, api.StateCancelled, api.StateIssued:
		return true, &EndedError{Request: r}
	}
	return false, nil
}

package jitclient

import (
	"context"
	"errors"
	"net/http"

	"github.com/jitssh/jitssh/api"
)

// redeem exchanges the approved request id for its certificate. A 409
// means the request changed since it was read: another jit wait redeemed
// it first, or it expired or was cancelled. That is the *EndedError of the
// request as it now is, not a failure of jit.
func (c *Client) redeem(ctx context.Context, id string) (api.RequestResponse, error) {
	res, err := c.API.Redeem(ctx, id)
	var ae *api.Error
	if err == nil || !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		return res, err
	}
	now, rerr := c.API.Request(ctx, id)
	if rerr != nil || now.Request.State == api.StateApproved || now.Request.State == api.StatePending {
		return res, &EndedError{Request: api.Request{ID: id}, Cause: err}
	}
	return res, &EndedError{Request: now.Request}
}

package api

import (
	"context"
	"net/http"
	"time"
)

// ConsoleCodeResponse answers POST /v1/console/codes: a one-time code that
// the web console at URL exchanges for a session cookie, once, before
// ExpiresAt.
type ConsoleCodeResponse struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
	// URL is the console's login page with the code in its fragment.
	URL string `json:"url"`
}

// Codes of the web console.
const (
	CodeConsoleCodeInvalid = "console_code_invalid"
	CodeConsoleCodeUsed    = "console_code_used"
	CodeConsoleCodeExpired = "console_code_expired"
	CodeConsoleSession     = "console_session_invalid"
	CodeShareInvalid       = "share_invalid"
	CodeShareTTL           = "share_ttl_invalid"
	CodeNotShareOwner      = "not_share_owner"
	CodeCSRF               = "csrf_refused"
)

// ConsoleCode asks for a one-time web console login code for the logged-in
// user; the console session it opens ends when the caller's token does.
func (c *Client) ConsoleCode(ctx context.Context) (ConsoleCodeResponse, error) {
	var out ConsoleCodeResponse
	return out, c.do(ctx, http.MethodPost, "/v1/console/codes", struct{}{}, &out)
}

// BaseURL is the https://host:port the client talks to.
func (c *Client) BaseURL() string { return c.base }

// PurposeShare is the code of recording.accessed when a console share
// link opened the recording.
const PurposeShare = "share"

package sso

import (
	"errors"
	"net/http"
	"testing"

	"golang.org/x/oauth2"
)

// FuzzParseTokenResponse feeds a token endpoint's answer, status and body,
// as a provider (or whatever answers in its place) may send it: the parser
// never panics, and gives either a token with an access token or an error,
// a refusal status or an "error" member always an *oauth2.RetrieveError.
func FuzzParseTokenResponse(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","id_token":"a.b.c"}`},
		{200, `{"access_token":"at","expires_in":"3600"}`},
		{400, `{"error":"authorization_pending"}`},
		{400, `{"error":"slow_down","error_description":"later"}`},
		{400, `{"error":"access_denied","error_uri":"https://idp.example/e"}`},
		{200, `{"error":"expired_token"}`},
		{500, `<html>down</html>`},
		{200, `{"token_type":"Bearer"}`},
		{200, `not json`},
		{200, `{"access_token":"at","expires_in":-5}`},
		{200, `{"access_token":"at","expires_in":1e400}`},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		tok, err := parseTokenResponse(resp, body)
		if (tok == nil) == (err == nil) {
			t.Fatalf("token %v and error %v", tok, err)
		}
		if tok != nil && tok.AccessToken == "" {
			t.Fatal("a token without an access token")
		}
		var re *oauth2.RetrieveError
		if (status < 200 || status > 299) && !errors.As(err, &re) {
			t.Fatalf("status %d: %v is no RetrieveError", status, err)
		}
	})
}

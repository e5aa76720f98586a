package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/tlspin"
)

// Client calls a jitd API over HTTPS, trusting exactly the TLS certificate
// whose fingerprint it was given: no certificate authority, no TOFU.
type Client struct {
	base        string
	fingerprint string
	token       string
	http        *http.Client
}

// NewClient returns a client for baseURL (https://host:port) that accepts
// only the server certificate with the given SHA-256 fingerprint
// ("SHA256:..." as printed by jitd init). token may be empty before login.
func NewClient(baseURL, fingerprint, token string) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("ca address %q must look like https://host:port", baseURL)
	}
	if !strings.HasPrefix(fingerprint, "SHA256:") {
		return nil, fmt.Errorf("fingerprint %q must start with SHA256: (as printed by jitd init)", fingerprint)
	}
	pin := fingerprint
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The chain is not checked against system roots: the pin below is
			// the whole trust decision, and it is stricter.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("server sent no certificate")
				}
				if got := tlspin.Fingerprint(cs.PeerCertificates[0].Raw); got != pin {
					return fmt.Errorf("server certificate fingerprint %s does not match the pinned %s", got, pin)
				}
				return checkValidity(cs.PeerCertificates[0])
			},
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), fingerprint: fingerprint, token: token, http: &http.Client{Transport: tr}}, nil
}

func checkValidity(c *x509.Certificate) error {
	now := time.Now()
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return fmt.Errorf("server certificate is valid from %s to %s, not now", c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// Fingerprint returns the pinned TLS fingerprint.
func (c *Client) Fingerprint() string { return c.fingerprint }

// SetToken sets the bearer token used for later calls.
func (c *Client) SetToken(token string) { c.token = token }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.doWith(ctx, method, path, nil, in, out)
}

// doWith is do with extra request headers.
func (c *Client) doWith(ctx context.Context, method, path string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.sendWith(ctx, method, path, header, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send performs a request and turns non-2xx answers into *Error.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	return c.sendWith(ctx, method, path, nil, body)
}

func (c *Client) sendWith(ctx context.Context, method, path string, header http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var eb ErrorBody
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
		if json.Unmarshal(raw, &eb) != nil || eb.Error.Code == "" {
			return nil, &Error{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(raw))}
		}
		return nil, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	return resp, nil
}

// Health checks that the daemon and its audit store answer.
func (c *Client) Health(ctx context.Context) error {
	var out HealthResponse
	return c.do(ctx, http.MethodGet, "/v1/health", nil, &out)
}

// CA returns the CA public keys and the bastion address.
func (c *Client) CA(ctx context.Context) (CAResponse, error) {
	var out CAResponse
	return out, c.do(ctx, http.MethodGet, "/v1/ca", nil, &out)
}

// KRL fetches the OpenSSH key revocation list of revoked user certificates.
func (c *Client) KRL(ctx context.Context) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/krl", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read KRL: %w", err)
	}
	return b, nil
}

// Login proves possession of an enrolled key by signing the server's nonce
// with signer, and returns the bearer token. The client keeps the token.
func (c *Client) Login(ctx context.Context, user string, signer ssh.Signer, ttl time.Duration) (LoginResponse, error) {
	var ch ChallengeResponse
	if err := c.do(ctx, http.MethodPost, "/v1/login/challenge", ChallengeRequest{User: user}, &ch); err != nil {
		return LoginResponse{}, err
	}
	sig, err := signSHA2(signer, LoginMessage(user, ch.Nonce, c.fingerprint))
	if err != nil {
		return LoginResponse{}, fmt.Errorf("sign login challenge: %w", err)
	}
	req := LoginRequest{
		User: user, Nonce: ch.Nonce,
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
		Signature: base64.StdEncoding.EncodeToString(ssh.Marshal(sig)),
	}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	var out LoginResponse
	if err := c.do(ctx, http.MethodPost, "/v1/login", req, &out); err != nil {
		return LoginResponse{}, err
	}
	c.token = out.Token
	return out, nil
}

// CreateRequest asks for access. A 201 answer carries the certificate; a 202
// answer is a pending request waiting for approval.
func (c *Client) CreateRequest(ctx context.Context, body CreateRequestBody) (RequestResponse, error) {
	var out RequestResponse
	return out, c.do(ctx, http.MethodPost, "/v1/requests", body, &out)
}

// CreateRequestIdempotent is CreateRequest with an Idempotency-Key: a
// retry with the same key and body within the daemon's window (24 hours)
// is answered with the first request and its certificate, never a second
// one. Use one random key per request asked for, and the same on retries.
func (c *Client) CreateRequestIdempotent(ctx context.Context, body CreateRequestBody, key string) (RequestResponse, error) {
	var out RequestResponse
	h := http.Header{IdempotencyKeyHeader: {key}}
	return out, c.doWith(ctx, http.MethodPost, "/v1/requests", h, body, &out)
}

// Request returns one request.
func (c *Client) Request(ctx context.Context, id string) (RequestResponse, error) {
	var out RequestResponse
	return out, c.do(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, &out)
}

// Requests lists the caller's requests, or with pending the requests the
// caller may approve, or with breakGlass every break-glass request.
func (c *Client) Requests(ctx context.Context, pending, breakGlass bool) ([]Request, error) {
	q := url.Values{}
	if pending {
		q.Set("pending", "true")
	}
	if breakGlass {
		q.Set("break_glass", "true")
	}
	var out RequestsResponse
	return out.Requests, c.do(ctx, http.MethodGet, "/v1/requests?"+q.Encode(), nil, &out)
}

// Approve records the caller's approval of a request.
func (c *Client) Approve(ctx context.Context, id, reason string) (RequestResponse, error) {
	var out RequestResponse
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/approve", DecisionBody{Reason: reason}, &out)
}

// Deny refuses a request.
func (c *Client) Deny(ctx context.Context, id, reason string) (RequestResponse, error) {
	var out RequestResponse
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/deny", DecisionBody{Reason: reason}, &out)
}

// Cancel withdraws the caller's request.
func (c *Client) Cancel(ctx context.Context, id string) (RequestResponse, error) {
	var out RequestResponse
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/cancel", nil, &out)
}

// Redeem fetches the certificate of an approved request.
func (c *Client) Redeem(ctx context.Context, id string) (RequestResponse, error) {
	var out RequestResponse
	return out, c.do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/certificate", nil, &out)
}

// Grants lists the caller's certificates that are valid now.
func (c *Client) Grants(ctx context.Context) ([]Grant, error) {
	var out GrantsResponse
	return out.Grants, c.do(ctx, http.MethodGet, "/v1/grants", nil, &out)
}

// AddUser enrols a user (admin role).
func (c *Client) AddUser(ctx context.Context, u UserBody) error {
	return c.do(ctx, http.MethodPost, "/v1/admin/users", u, nil)
}

// RemoveUser removes an enrolled user (admin role).
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/admin/users/"+url.PathEscape(name), nil, nil)
}

// Users lists users (admin role).
func (c *Client) Users(ctx context.Context) ([]UserBody, error) {
	var out UsersResponse
	return out.Users, c.do(ctx, http.MethodGet, "/v1/admin/users", nil, &out)
}

// Reload makes the daemon re-read its policy file (admin role).
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/admin/reload", struct{}{}, nil)
}

// Revoke revokes a certificate by serial (admin role).
func (c *Client) Revoke(ctx context.Context, serial uint64, reason string) error {
	return c.do(ctx, http.MethodPost, "/v1/admin/revoke", RevokeBody{Serial: serial, Reason: reason}, nil)
}

// EventQuery selects audit events.
type EventQuery struct {
	User, Host, Event, RequestID, SessionID string
	Since, Until                            string
	After                                   int64
	Limit                                   int
}

// Events lists audit events in order (auditor or admin role).
func (c *Client) Events(ctx context.Context, q EventQuery) ([]Event, error) {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("user", q.User)
	set("host", q.Host)
	set("event", q.Event)
	set("request", q.RequestID)
	set("sid", q.SessionID)
	set("since", q.Since)
	set("until", q.Until)
	if q.After > 0 {
		v.Set("after", fmt.Sprint(q.After))
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	var out EventsResponse
	return out.Events, c.do(ctx, http.MethodGet, "/v1/audit/events?"+v.Encode(), nil, &out)
}

// Verify checks the audit chain and every finished recording.
func (c *Client) Verify(ctx context.Context) (VerifyResponse, error) {
	var out VerifyResponse
	return out, c.do(ctx, http.MethodGet, "/v1/audit/verify", nil, &out)
}

// SessionQuery selects sessions.
type SessionQuery struct {
	User, Host, Since, Until string
	Live                     bool
}

// Sessions lists sessions, newest first.
func (c *Client) Sessions(ctx context.Context, q SessionQuery) ([]Session, error) {
	v := url.Values{}
	for k, val := range map[string]string{"user": q.User, "host": q.Host, "since": q.Since, "until": q.Until} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if q.Live {
		v.Set("live", "true")
	}
	var out SessionsResponse
	return out.Sessions, c.do(ctx, http.MethodGet, "/v1/sessions?"+v.Encode(), nil, &out)
}

// Session returns one session with its grant.
func (c *Client) Session(ctx context.Context, id string) (SessionDetail, error) {
	var out SessionDetail
	return out, c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, &out)
}

// Recording opens a session's asciicast recording. With follow, the stream
// goes on until a live session ends. purpose ("replay", "export", "watch")
// is recorded in the audit log. The caller closes the reader.
func (c *Client) Recording(ctx context.Context, id, purpose string, follow bool) (io.ReadCloser, error) {
	v := url.Values{"purpose": {purpose}}
	if follow {
		v.Set("follow", "true")
	}
	resp, err := c.send(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id)+"/recording?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Search finds sessions whose text matches.
func (c *Client) Search(ctx context.Context, text, user, host, since string) ([]SearchHit, error) {
	v := url.Values{"q": {text}}
	for k, val := range map[string]string{"user": user, "host": host, "since": since} {
		if val != "" {
			v.Set(k, val)
		}
	}
	var out SearchResponse
	return out.Hits, c.do(ctx, http.MethodGet, "/v1/sessions/search?"+v.Encode(), nil, &out)
}

// retryAfter reads a Retry-After header given in seconds; the HTTP-date
// form, which jitd never sends, reads as zero.
func retryAfter(h string) time.Duration {
	n, err := strconv.Atoi(h)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// signSHA2 signs msg with signer, an RSA key with rsa-sha2-512: jitd, like
// OpenSSH, refuses SHA-1 ssh-rsa signatures.
func signSHA2(signer ssh.Signer, msg []byte) (*ssh.Signature, error) {
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		return as.SignWithAlgorithm(nil, msg, ssh.KeyAlgoRSASHA512)
	}
	return signer.Sign(nil, msg)
}

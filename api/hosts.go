package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Error codes of hosts as data (join, renewal, removal).
const (
	// CodeJoinTokenInvalid means the join token is unknown, already used
	// or expired (HTTP 401); the message says which.
	CodeJoinTokenInvalid = "join_token_invalid"
	// CodeHostKeyChanged means the host is enrolled with another host key
	// (HTTP 409): remove it first to enrol a new key.
	CodeHostKeyChanged = "host_key_changed"
	// CodeHostRemoved means the host was removed; it may join again with
	// a new token (HTTP 410).
	CodeHostRemoved = "host_removed"
	// CodeInvalidAddress means a host address is not host:port.
	CodeInvalidAddress = "invalid_address"
	// CodeInvalidLabel means a label key or value is not a valid name.
	CodeInvalidLabel = "invalid_label"
	// CodeHostNotEnrolled means no enrolled host has that name.
	CodeHostNotEnrolled = "host_not_enrolled"
)

// HostTokenRequest asks for a one-time join token bound to a host name:
// POST /v1/admin/hosts/tokens (admin role). TTL defaults to 1h, at most
// 24h.
type HostTokenRequest struct {
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Labels  map[string]string `json:"labels,omitempty"`
	TTL     string            `json:"ttl,omitempty"`
}

// HostTokenResponse carries the join token, shown once: jitd keeps only
// its hash.
type HostTokenResponse struct {
	Token     string    `json:"token"`
	Host      string    `json:"host"`
	ExpiresAt time.Time `json:"expires_at"`
}

// HostJoinRequest enrols a host: POST /v1/hosts/join. The join token is
// the credential (no bearer token).
type HostJoinRequest struct {
	Token string `json:"token"`
	// HostKey is the host's ed25519 or RSA public host key, in
	// authorized_keys form.
	HostKey string `json:"host_key"`
}

// HostJoinResponse is everything a joined (or renewed) host installs.
type HostJoinResponse struct {
	Host    string `json:"host"`
	Address string `json:"address"`
	// HostCertificate is the host certificate in authorized_keys form.
	HostCertificate string `json:"host_certificate"`
	// TargetCA and HostCA are authorized_keys lines of the CA keys.
	TargetCA string `json:"target_ca"`
	HostCA   string `json:"host_ca"`
	// KRL is jitssh's OpenSSH KRL, a section per CA key, as GET /v1/krl serves it (RevokedKeys).
	KRL []byte `json:"krl"`
	// Logins are every login any role of the policy may grant on this
	// host, sorted.
	Logins  []string `json:"logins"`
	Bastion string   `json:"bastion"`
	// RenewBefore is when the host should have renewed its certificate.
	RenewBefore time.Time `json:"renew_before"`
}

// HostChallengeResponse is a renewal nonce: POST
// /v1/hosts/{name}/renew/challenge. It is valid once, until ExpiresAt.
type HostChallengeResponse struct {
	Nonce     string    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

// HostRenewRequest proves the host key: POST /v1/hosts/{name}/renew.
// Signature is base64 of ssh.Marshal(*ssh.Signature) over
// HostRenewMessage, made with the host's private host key.
type HostRenewRequest struct {
	Nonce     string `json:"nonce"`
	Signature string `json:"signature"`
}

// HostRemoveRequest gives the reason of a removal: DELETE
// /v1/admin/hosts/{name}.
type HostRemoveRequest struct {
	Reason string `json:"reason"`
}

// HostRecord is a host of the inventory as an admin sees it: GET
// /v1/admin/hosts. Source is "store" (enrolled by join) or "policy" (listed
// in the policy file only); policy hosts have no enrolment fields.
type HostRecord struct {
	Name          string            `json:"name"`
	Address       string            `json:"address"`
	Labels        map[string]string `json:"labels,omitempty"`
	HostKey       string            `json:"host_key,omitempty"`
	EnrolledAt    time.Time         `json:"enrolled_at,omitzero"`
	EnrolledBy    string            `json:"enrolled_by,omitempty"`
	CertSerial    string            `json:"cert_serial,omitempty"`
	CertExpiresAt time.Time         `json:"cert_expires_at,omitzero"`
	LastSeen      time.Time         `json:"last_seen,omitzero"`
	Source        string            `json:"source"`
}

// Sources of a HostRecord.
const (
	HostSourceStore  = "store"
	HostSourcePolicy = "policy"
)

// HostRenewMessage is the exact byte string a host signs with its host key
// to renew its certificate. It binds the signature to the host name, the
// server's nonce and the TLS certificate the host pinned, as LoginMessage
// does for users.
func HostRenewMessage(name, nonce, tlsFingerprint string) []byte {
	return []byte("jitssh-host-renew-v1\n" + name + "\n" + nonce + "\n" + tlsFingerprint + "\n")
}

// CreateHostToken makes a one-time join token for a host (admin role).
func (c *Client) CreateHostToken(ctx context.Context, req HostTokenRequest) (HostTokenResponse, error) {
	var out HostTokenResponse
	return out, c.do(ctx, http.MethodPost, "/v1/admin/hosts/tokens", req, &out)
}

// JoinHost enrols a host with its join token and public host key; it
// needs no login.
func (c *Client) JoinHost(ctx context.Context, req HostJoinRequest) (HostJoinResponse, error) {
	var out HostJoinResponse
	return out, c.do(ctx, http.MethodPost, "/v1/hosts/join", req, &out)
}

// HostRenewChallenge asks for a nonce to renew host name's certificate.
func (c *Client) HostRenewChallenge(ctx context.Context, name string) (HostChallengeResponse, error) {
	var out HostChallengeResponse
	return out, c.do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(name)+"/renew/challenge", struct{}{}, &out)
}

// RenewHost sends a signed renewal challenge (see RenewHostWithKey) and
// returns a new host certificate and the current KRL.
func (c *Client) RenewHost(ctx context.Context, name string, req HostRenewRequest) (HostJoinResponse, error) {
	var out HostJoinResponse
	return out, c.do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(name)+"/renew", req, &out)
}

// RenewHostWithKey renews host name's certificate in one call: it asks for
// a challenge, signs it with the private host key and sends it.
func (c *Client) RenewHostWithKey(ctx context.Context, name string, hostKey ssh.Signer) (HostJoinResponse, error) {
	ch, err := c.HostRenewChallenge(ctx, name)
	if err != nil {
		return HostJoinResponse{}, err
	}
	sig, err := signSHA2(hostKey, HostRenewMessage(name, ch.Nonce, c.fingerprint))
	if err != nil {
		return HostJoinResponse{}, fmt.Errorf("sign renewal challenge of host %q: %w", name, err)
	}
	return c.RenewHost(ctx, name, HostRenewRequest{Nonce: ch.Nonce, Signature: base64.StdEncoding.EncodeToString(ssh.Marshal(sig))})
}

// AdminHosts lists the inventory (admin role); a non-zero expiring keeps
// only the hosts whose certificate expires within it.
func (c *Client) AdminHosts(ctx context.Context, expiring time.Duration) ([]HostRecord, error) {
	path := "/v1/admin/hosts"
	if expiring > 0 {
		path += "?expiring=" + url.QueryEscape(expiring.String())
	}
	var out []HostRecord
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// RemoveHost removes an enrolled host (admin role): its host certificate
// and every unexpired user certificate for it are revoked.
func (c *Client) RemoveHost(ctx context.Context, name, reason string) error {
	return c.do(ctx, http.MethodDelete, "/v1/admin/hosts/"+url.PathEscape(name), HostRemoveRequest{Reason: reason}, nil)
}

// KnownHosts fetches the known_hosts text: the host CA as
// @cert-authority and the keys of removed hosts as @revoked.
func (c *Client) KnownHosts(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/known_hosts", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, io.LimitReader(resp.Body, 16<<20)); err != nil {
		return "", fmt.Errorf("read known_hosts: %w", err)
	}
	return b.String(), nil
}

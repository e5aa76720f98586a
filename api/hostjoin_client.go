package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// The wire of host enrolment (issue 10): a target joins with a one-time
// token and renews by proving its host key. The server side is written to
// the same contract; the lead keeps one copy of these names at merge.

// Codes of host enrolment.
const (
	// CodeJoinTokenInvalid means a join token is unknown, used or expired;
	// the message says which.
	CodeJoinTokenInvalid = "join_token_invalid"
	// CodeHostKeyChanged means the host is enrolled with another host key.
	CodeHostKeyChanged = "host_key_changed"
	// CodeHostRemoved means the host was removed and may not renew.
	CodeHostRemoved = "host_removed"
)

// HostJoinRequest enrols a target: POST /v1/hosts/join, without a bearer
// token (the join token is the credential).
type HostJoinRequest struct {
	Token string `json:"token"`
	// HostKey is the authorized_keys line of the host's ed25519 or RSA key.
	HostKey string `json:"host_key"`
}

// HostJoinResponse is what a target installs, the answer to a join and to
// a renewal.
type HostJoinResponse struct {
	Host    string `json:"host"`
	Address string `json:"address"`
	// HostCertificate is the host certificate in authorized_keys form.
	HostCertificate string `json:"host_certificate"`
	// TargetCA is the authorized_keys line of the target CA (TrustedUserCAKeys).
	TargetCA string `json:"target_ca"`
	// HostCA is the authorized_keys line of the host CA.
	HostCA string `json:"host_ca"`
	// KRL is an OpenSSH KRL with the target CA's revocations.
	KRL []byte `json:"krl"`
	// Logins are the logins any role may grant on this host, sorted.
	Logins      []string  `json:"logins"`
	Bastion     string    `json:"bastion"`
	RenewBefore time.Time `json:"renew_before"`
}

// HostChallengeResponse answers POST /v1/hosts/{name}/renew/challenge.
type HostChallengeResponse struct {
	Nonce     string    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

// HostRenewRequest renews a host certificate: POST /v1/hosts/{name}/renew.
// Signature is the base64 of ssh.Marshal(*ssh.Signature) over
// HostRenewMessage, made with the host's private host key.
type HostRenewRequest struct {
	Nonce     string `json:"nonce"`
	Signature string `json:"signature"`
}

// HostRenewMessage is the text a host signs to renew its certificate. It
// binds the host name, the server's nonce and the API's TLS certificate,
// so a signature cannot be replayed to another host name or server.
func HostRenewMessage(name, nonce, tlsFingerprint string) []byte {
	return []byte("jitssh-host-renew-v1\n" + name + "\n" + nonce + "\n" + tlsFingerprint + "\n")
}

// JoinHost enrols this host with a join token. The client needs no bearer
// token (make it with NewClient(url, fingerprint, "")).
func (c *Client) JoinHost(ctx context.Context, req HostJoinRequest) (HostJoinResponse, error) {
	var out HostJoinResponse
	return out, c.do(ctx, http.MethodPost, "/v1/hosts/join", req, &out)
}

// HostRenewChallenge asks for a nonce to sign with the host key of name.
func (c *Client) HostRenewChallenge(ctx context.Context, name string) (HostChallengeResponse, error) {
	var out HostChallengeResponse
	return out, c.do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(name)+"/renew/challenge", struct{}{}, &out)
}

// RenewHost sends the signed nonce and returns a new host certificate and
// the current KRL.
func (c *Client) RenewHost(ctx context.Context, name string, req HostRenewRequest) (HostJoinResponse, error) {
	var out HostJoinResponse
	return out, c.do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(name)+"/renew", req, &out)
}

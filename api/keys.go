package api

import (
	"context"
	"net/http"
	"net/url"
)

// Codes of the identity checks (package grant): one key, one user; the
// certificate presented is the one issued.
const (
	// CodeKeyInUse means an enrolment named a key that belongs to another
	// user; the message names that user.
	CodeKeyInUse = "key_in_use"
	// CodeKeyShared means a login used a key that several users hold; the
	// message names them and what an admin runs.
	CodeKeyShared = "key_shared"
	// CodeCertificateMismatch means a certificate presented under an issued
	// serial differs from the one the CA issued (the bastion's refusal,
	// recorded as the code of session.rejected).
	CodeCertificateMismatch = "certificate_mismatch"
)

// KeyDuplicate is one public key that more than one user holds.
type KeyDuplicate struct {
	Fingerprint string   `json:"fingerprint"`
	Users       []string `json:"users"`
}

// KeyDuplicatesResponse answers GET /v1/admin/keys/duplicates.
type KeyDuplicatesResponse struct {
	Duplicates []KeyDuplicate `json:"duplicates"`
}

// RemoveKeyBody removes one key from an enrolled user:
// POST /v1/admin/users/{name}/remove-key.
type RemoveKeyBody struct {
	Fingerprint string `json:"fingerprint"`
}

// KeyDuplicates lists the keys that more than one user holds (admin role).
func (c *Client) KeyDuplicates(ctx context.Context) ([]KeyDuplicate, error) {
	var out KeyDuplicatesResponse
	return out.Duplicates, c.do(ctx, http.MethodGet, "/v1/admin/keys/duplicates", nil, &out)
}

// RemoveKey removes the key with fingerprint (SHA256:...) from the enrolled
// user name; a user left without keys is unenrolled (admin role).
func (c *Client) RemoveKey(ctx context.Context, name, fingerprint string) error {
	return c.do(ctx, http.MethodPost, "/v1/admin/users/"+url.PathEscape(name)+"/remove-key", RemoveKeyBody{Fingerprint: fingerprint}, nil)
}

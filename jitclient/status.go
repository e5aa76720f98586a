package jitclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

// GrantState is a local grant with what the daemon says of it.
type GrantState struct {
	Grant creds.Grant
	// Remote is the daemon's answer; nil when Unknown or Offline.
	Remote *api.GrantStatus
	// Unknown means the daemon did not issue this certificate to the
	// logged-in user (another daemon's, or the files were replaced).
	Unknown bool
	// Offline is why the daemon could not be asked; the state is then
	// the local files' alone.
	Offline error
}

// GrantStates asks the daemon about each grant. Once the daemon cannot be
// reached (no answer, not an API error) the rest are not asked: each is
// marked Offline with that error.
func (c *Client) GrantStates(ctx context.Context, grants []creds.Grant) []GrantState {
	out := make([]GrantState, 0, len(grants))
	var offline error
	for _, g := range grants {
		st := GrantState{Grant: g, Offline: offline}
		if offline == nil {
			st = c.grantState(ctx, g)
			offline = st.Offline
		}
		out = append(out, st)
	}
	return out
}

func (c *Client) grantState(ctx context.Context, g creds.Grant) GrantState {
	st := GrantState{Grant: g}
	remote, err := c.API.GrantStatus(ctx, g.Cert.Serial)
	var ae *api.Error
	switch {
	case err == nil:
		st.Remote = &remote
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		st.Unknown = true
	default:
		st.Offline = err
	}
	return st
}

// Refusal says why the bastion would refuse grant g's certificate, as the
// daemon knows it: revoked, expired, not issued for LOGIN@HOST, or not
// known. It is "" when the daemon holds the certificate valid (the cause
// lies elsewhere: the network, the target) or cannot be asked.
func (c *Client) Refusal(ctx context.Context, g creds.Grant, now time.Time) string {
	principal := g.Login + "@" + g.Host
	if !slices.Contains(g.Cert.ValidPrincipals, principal) {
		return fmt.Sprintf("certificate serial %d was not issued for %s (it is for %v)", g.Cert.Serial, principal, g.Cert.ValidPrincipals)
	}
	st := c.grantState(ctx, g)
	switch {
	case st.Offline != nil:
		return ""
	case st.Unknown:
		return fmt.Sprintf("certificate serial %d is not known to the daemon at %s: it was not issued to %s by this CA", g.Cert.Serial, c.Config.CA, c.Config.User)
	}
	r := st.Remote
	switch {
	case r.State == api.CertRevoked:
		at := ""
		if r.RevokedAt != nil {
			at = " at " + r.RevokedAt.UTC().Format(time.RFC3339)
		}
		return fmt.Sprintf("certificate serial %d was revoked%s: %s", r.Serial, at, r.RevokeReason)
	case r.State == api.CertExpired || !now.Before(r.ValidBefore):
		return fmt.Sprintf("certificate serial %d expired at %s; ask again with jit request", r.Serial, r.ValidBefore.UTC().Format(time.RFC3339))
	case r.State == api.CertNotYetValid:
		return fmt.Sprintf("certificate serial %d is not valid before %s (check this machine's clock)", r.Serial, r.ValidAfter.UTC().Format(time.RFC3339))
	case !slices.Contains(r.Principals, principal):
		return fmt.Sprintf("certificate serial %d was issued for %v, not %s", r.Serial, r.Principals, principal)
	}
	return ""
}

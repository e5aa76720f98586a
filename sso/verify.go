package sso

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jitssh/jitssh/policy"
)

// Skew is the clock difference allowed when checking exp and nbf.
const Skew = 30 * time.Second

// Bounds on the groups claim: a policy's provider group names are at most
// 256 bytes, and providers cap the groups in a token (Entra at 200).
const (
	maxGroupLength = 256
	maxGroups      = 1000
)

// Identity is a person as an ID token the daemon accepted names them.
type Identity struct {
	Provider string
	Subject  string
	// User is the user claim, a valid jitssh user name.
	User string
	// Groups are the provider's groups (the groups claim), unmapped.
	Groups []string
	// Expiry is the ID token's exp.
	Expiry time.Time
	// RefreshToken is the provider's refresh token, when it gave one. It is
	// a credential: never log it.
	RefreshToken string
	// MaxLifetime is the provider's max_token_lifetime (zero: no cap).
	MaxLifetime time.Duration
}

// claims are the registered claims this package checks itself.
type claims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  audience        `json:"aud"`
	AZP       string          `json:"azp"`
	Expiry    *json.Number    `json:"exp"`
	NotBefore *json.Number    `json:"nbf"`
	Nonce     *string         `json:"nonce"`
	Raw       json.RawMessage `json:"-"`
}

// audience is aud: a string or a list of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud is neither a string nor a list of strings")
	}
	*a = many
	return nil
}

// verify checks rawIDToken: signature with an allowed algorithm and a key
// the provider publishes, issuer, audience, azp, exp and nbf with Skew, and
// the nonce when nonce is not empty (a refreshed ID token carries none, or
// the original). On success it returns the identity it names.
func (p *provider) verify(ctx context.Context, d *discovered, rawIDToken, nonce string) (Identity, error) {
	payload, err := d.keys.VerifySignature(ctx, rawIDToken)
	if err != nil {
		return Identity{}, err
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Identity{}, invalid(ReasonMalformed, "id token claims are not a JSON object: %v", err)
	}
	if err := p.checkClaims(c, nonce); err != nil {
		return Identity{}, err
	}
	// go-oidc's own reading, through the same key set.
	tok, err := d.oidc.Verify(ctx, rawIDToken)
	if err != nil {
		return Identity{}, invalid(ReasonMalformed, "id token refused by go-oidc: %v", err)
	}
	var all map[string]any
	if err := tok.Claims(&all); err != nil {
		return Identity{}, invalid(ReasonMalformed, "id token claims: %v", err)
	}
	exp, _ := numericDate(c.Expiry)
	return p.identity(c.Subject, all, exp)
}

func (p *provider) checkClaims(c claims, nonce string) error {
	if c.Issuer != p.cfg.Issuer {
		return invalid(ReasonIssuer, "id token issuer %q is not %q", bounded(c.Issuer), p.cfg.Issuer)
	}
	if !slices.Contains(c.Audience, p.cfg.ClientID) {
		return invalid(ReasonAudience, "id token audience %q does not hold the client id %q", boundedList(c.Audience), p.cfg.ClientID)
	}
	// OpenID Connect Core 3.1.3.7: with several audiences azp should be
	// present, and when present it must be this client.
	if (len(c.Audience) > 1 || c.AZP != "") && c.AZP != p.cfg.ClientID {
		return invalid(ReasonAZP, "id token azp %q is not the client id %q (audience %q)", bounded(c.AZP), p.cfg.ClientID, boundedList(c.Audience))
	}
	now := p.now()
	exp, ok := numericDate(c.Expiry)
	if !ok {
		return invalid(ReasonMalformed, "id token has no valid exp")
	}
	if !now.Before(exp.Add(Skew)) {
		return invalid(ReasonExpired, "id token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if c.NotBefore != nil {
		nbf, ok := numericDate(c.NotBefore)
		if !ok {
			return invalid(ReasonMalformed, "id token nbf is not a number")
		}
		if now.Add(Skew).Before(nbf) {
			return invalid(ReasonNotYet, "id token is not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
	}
	if c.Subject == "" {
		return invalid(ReasonMalformed, "id token has no sub")
	}
	if nonce != "" && (c.Nonce == nil || subtle.ConstantTimeCompare([]byte(*c.Nonce), []byte(nonce)) != 1) {
		return invalid(ReasonNonce, "id token nonce is not the one this login sent")
	}
	return nil
}

// identity reads the user and groups claims.
func (p *provider) identity(sub string, all map[string]any, exp time.Time) (Identity, error) {
	user, _ := all[p.cfg.UserClaim].(string)
	if user == "" {
		return Identity{}, refuse(CodeNoUser, "", "id token has no %s claim", p.cfg.UserClaim)
	}
	if err := policy.ValidName("user", user); err != nil {
		return Identity{}, refuse(CodeNoUser, "", "id token %s claim %q is not a jitssh user name: %v", p.cfg.UserClaim, bounded(user), err)
	}
	if !ssoUserName(user) {
		return Identity{}, refuse(CodeNoUser, "", "id token %s claim %q is not an sso user name: want lower-case ASCII letters, digits, '.', '_' and '-', starting with a letter or digit (so that no look-alike of another name, such as Alice or a Cyrillic a, can sit beside it)",
			p.cfg.UserClaim, bounded(user))
	}
	var groups []string
	switch g := all[p.cfg.GroupsClaim].(type) {
	case string:
		groups = []string{g}
	case []any:
		for _, v := range g {
			// Groups longer than a policy may name could never map; a
			// bound on their number bounds what the store keeps.
			if s, ok := v.(string); ok && s != "" && len(s) <= maxGroupLength && len(groups) < maxGroups {
				groups = append(groups, s)
			}
		}
	}
	slices.Sort(groups)
	return Identity{Provider: p.cfg.Name, Subject: sub, User: user, Groups: slices.Compact(groups), Expiry: exp, MaxLifetime: p.cfg.MaxTokenLifetime}, nil
}

func numericDate(n *json.Number) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// bounded shortens a value from a token for a message.
func bounded(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func boundedList(l []string) string {
	b, _ := json.Marshal(l)
	return bounded(string(b))
}

// ssoUserName reports whether user matches ^[a-z0-9][a-z0-9._-]*$: SSO
// names are stricter than the policy's, since the provider, not an admin,
// chooses them.
func ssoUserName(user string) bool {
	for i, c := range []byte(user) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return user != ""
}

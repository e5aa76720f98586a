package grant

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/sso"
)

// Codes of SSO logins in addition to package sso's (all have api
// constants of the same value).
const (
	CodeSSONoRoles       = "sso_no_roles"
	CodeNotSSOLogin      = "not_sso_login"
	CodeKeyLoginDisabled = "key_login_disabled"
)

// SSO login methods, the method field of login and login.failed events.
const (
	MethodKey     = "key"
	MethodSSO     = "sso"
	MethodDevice  = "device"
	MethodRefresh = "refresh"
)

// Reasons of SSO refusals decided here (package sso has the token's).
const (
	reasonIdentityConflict = "identity_conflict"
	reasonLocalUser        = "local_user"
	reasonAlreadyRefreshed = "already_refreshed"
)

func (l *Logins) rp() (*sso.RP, error) {
	if l.cfg.SSO == nil {
		return nil, newError(KindInvalid, sso.CodeUnknownProvider, "this daemon has no sso provider configured (jitd serve --sso-config)")
	}
	return l.cfg.SSO, nil
}

// SSOProviders lists the configured providers; none without --sso-config.
func (l *Logins) SSOProviders(ctx context.Context) []sso.ProviderInfo {
	if l.cfg.SSO == nil {
		return nil
	}
	return l.cfg.SSO.Providers(ctx)
}

// SSOStart begins an authorization-code login; see sso.RP.Start. A refusal
// is recorded as login.failed.
func (l *Logins) SSOStart(ctx context.Context, provider, redirectURI, clientAddr string) (flow, authURL string, expires time.Time, err error) {
	rp, err := l.rp()
	if err == nil {
		flow, authURL, expires, err = rp.Start(ctx, provider, redirectURI, clientAddr)
	}
	if err != nil {
		return "", "", time.Time{}, l.refuseSSO(ctx, err, MethodSSO, provider, "", clientAddr, "")
	}
	return flow, authURL, expires, nil
}

// SSOFinish ends an authorization-code login and issues a token as Login
// does; every outcome is recorded (login, or login.failed with its code).
func (l *Logins) SSOFinish(ctx context.Context, flow, code, state, clientAddr string) (Token, error) {
	rp, err := l.rp()
	var id sso.Identity
	if err == nil {
		id, err = rp.Finish(ctx, flow, code, state)
	}
	if err != nil {
		return Token{}, l.refuseSSO(ctx, err, MethodSSO, "", "", clientAddr, "")
	}
	return l.issueSSO(ctx, id, MethodSSO, clientAddr, "")
}

// SSODeviceStart begins a device login; see sso.RP.StartDevice.
func (l *Logins) SSODeviceStart(ctx context.Context, provider, clientAddr string) (sso.DeviceStart, error) {
	rp, err := l.rp()
	var ds sso.DeviceStart
	if err == nil {
		ds, err = rp.StartDevice(ctx, provider, clientAddr)
	}
	if err != nil {
		return sso.DeviceStart{}, l.refuseSSO(ctx, err, MethodDevice, provider, "", clientAddr, "")
	}
	return ds, nil
}

// SSODevicePoll returns a token once the device login is done, or pending
// with the seconds to wait (nothing recorded), or the recorded refusal.
func (l *Logins) SSODevicePoll(ctx context.Context, flow, clientAddr string) (Token, int, error) {
	rp, err := l.rp()
	var id sso.Identity
	var pending int
	if err == nil {
		id, pending, err = rp.PollDevice(ctx, flow)
	}
	if err != nil {
		return Token{}, 0, l.refuseSSO(ctx, err, MethodDevice, "", "", clientAddr, "")
	}
	if pending > 0 {
		return Token{}, pending, nil
	}
	t, err := l.issueSSO(ctx, id, MethodDevice, clientAddr, "")
	return t, 0, err
}

// SSORefresh exchanges the bearer token of an SSO login for a new one: the
// provider's refresh token is used, the groups are read and mapped again,
// and the old token is revoked. Refreshes of one token are serialised: in
// the process the second waits and finds the token revoked; across
// replicas it is refused busy (claimRefresh) and, tried again, finds the
// token revoked. A failure that may pass (the provider or
// the store unreachable: 503 sso_provider_failed) keeps the token; a
// refusal of the token itself (its name now a local user's, another
// subject) revokes it; a provider that refuses the refresh grant (a
// disabled person, an ended session) or groups that map to nothing also
// end the person's SSO roles at once: the identity's groups are emptied.
func (l *Logins) SSORefresh(ctx context.Context, token, clientAddr string) (Token, error) {
	hash := hashToken(token)
	unlock := l.lockRefresh(hash)
	defer unlock()
	user, err := l.Authenticate(ctx, token)
	if err != nil {
		return Token{}, err
	}
	var login audit.SSOLogin
	err = l.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		login, err = tx.SSOLogin(hash)
		return err
	})
	if errors.Is(err, audit.ErrNotFound) {
		return Token{}, l.refuseSSO(ctx, newError(KindInvalid, CodeNotSSOLogin, "this token is from a key login; run jit login again instead"), MethodRefresh, "", user, clientAddr, "")
	}
	if err != nil {
		return Token{}, unavailable(err)
	}
	release, err := l.claimRefresh(ctx, hash)
	if err != nil {
		return Token{}, l.refuseSSO(ctx, err, MethodRefresh, login.Provider, login.Name, clientAddr, hash)
	}
	defer release()
	rp, err := l.rp()
	var id sso.Identity
	if err == nil {
		var refresh string
		if refresh, err = unsealRefresh(token, hash, login.RefreshSealed); err == nil {
			id, err = rp.Refresh(ctx, login.Provider, refresh, login.Subject)
		}
	}
	if err == nil && id.User != login.Name {
		err = &sso.Error{Code: sso.CodeTokenInvalid, Reason: reasonIdentityConflict,
			Message: fmt.Sprintf("refreshed id token names user %q, not %q", audit.BoundText(id.User, maxAuditText), login.Name)}
	}
	if err != nil {
		return Token{}, l.refuseSSO(ctx, err, MethodRefresh, login.Provider, login.Name, clientAddr, hash)
	}
	return l.issueSSO(ctx, id, MethodRefresh, clientAddr, hash)
}

// ssoKind is the Kind of an sso code.
func ssoKind(code string) Kind {
	switch code {
	case sso.CodeUnknownProvider, sso.CodeBadRedirect:
		return KindInvalid
	case sso.CodeProviderFailed, sso.CodeBusy:
		return KindUnavailable
	}
	return KindUnauthenticated
}

// refuseSSO records err as login.failed with its code, method and reason,
// and returns it as an *Error. With oldHash (a refresh), the old token and
// its SSO login are revoked and the identity's groups emptied in the same
// transaction.
func (l *Logins) refuseSSO(ctx context.Context, err error, method, provider, user, clientAddr, oldHash string) error {
	ge := &Error{}
	var se *sso.Error
	reason := ""
	switch {
	case errors.As(err, &se):
		ge = &Error{Kind: ssoKind(se.Code), Code: se.Code, Message: se.Message, Err: se.Err}
		reason = se.Reason
		provider = cmp.Or(provider, se.Provider)
	case errors.As(err, &ge):
	default:
		ge = &Error{Kind: KindInternal, Code: "internal", Message: "sso login failed", Err: err}
	}
	if method == MethodRefresh && ge.Code == sso.CodeAccessDenied {
		ge.Code = sso.CodeRefreshFailed
	}
	revokeToken, emptyGroups := revocation(ge, reason)
	if oldHash == "" {
		revokeToken, emptyGroups = false, false
	}
	now := l.now()
	data := map[string]string{"method": method}
	for k, v := range map[string]string{"provider": audit.BoundText(provider, maxAuditText), "reason": audit.BoundText(reason, maxAuditText)} {
		if v != "" {
			data[k] = v
		}
	}
	ev := audit.Event{Time: now, Type: "login.failed", Code: ge.Code, User: audit.BoundText(user, maxAuditText), ClientAddr: clientAddr,
		Message: audit.BoundText(ge.Message, 4*maxAuditText), Data: data}
	rerr := l.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if revokeToken {
			if err := revokeSSOLocked(tx, oldHash, user, emptyGroups, now); err != nil {
				return err
			}
		}
		_, err := tx.Append(ev)
		return err
	})
	if revokeToken {
		l.forget(oldHash)
		if err := l.refreshPolicy(ctx); err != nil {
			l.cfg.Logger.Warn("sso refresh refused, but the policy in force could not be refreshed", "user", user, "err", err)
		}
	}
	return withRecordFailure(ge, rerr)
}

// revocation says what a refused refresh does to the old token: a failure
// that may pass (the provider or the store unreachable, a lost race, a
// fault here) keeps it, so the person can try again; a refusal of the
// token or its name revokes it; the provider's word that the person may no
// longer log in (a refused refresh grant, groups that map to nothing) also
// empties the identity's groups, which ends their other tokens.
func revocation(ge *Error, reason string) (revokeToken, emptyGroups bool) {
	switch {
	case ge.Kind == KindUnavailable || ge.Kind == KindInternal || reason == reasonAlreadyRefreshed:
		return false, false
	case ge.Code == sso.CodeRefreshFailed && (reason == "invalid_grant" || reason == "access_denied"), ge.Code == CodeSSONoRoles:
		return true, true
	}
	return true, false
}

// lockRefresh serialises the refreshes of the token with hash.
func (l *Logins) lockRefresh(hash string) (unlock func()) {
	l.mu.Lock()
	if l.refreshing == nil {
		l.refreshing = map[string]*refreshLock{}
	}
	rl := l.refreshing[hash]
	if rl == nil {
		rl = &refreshLock{}
		l.refreshing[hash] = rl
	}
	rl.waiters++
	l.mu.Unlock()
	rl.mu.Lock()
	return func() {
		rl.mu.Unlock()
		l.mu.Lock()
		if rl.waiters--; rl.waiters == 0 {
			delete(l.refreshing, hash)
		}
		l.mu.Unlock()
	}
}

type refreshLock struct {
	mu      sync.Mutex
	waiters int // under Logins.mu
}

// revokeSSOLocked deletes the token and SSO login of hash and, with
// emptyGroups, empties the groups of user's identity, inside tx.
func revokeSSOLocked(tx *audit.Tx, hash, user string, emptyGroups bool, now time.Time) error {
	if err := tx.DeleteToken(hash); err != nil && !errors.Is(err, audit.ErrNotFound) {
		return err
	}
	if err := tx.DeleteSSOLogin(hash); err != nil {
		return err
	}
	if !emptyGroups {
		return nil
	}
	id, err := tx.SSOIdentity(user)
	if errors.Is(err, audit.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	id.Groups, id.ExpiresAt, id.UpdatedAt = nil, now, now
	return tx.PutSSOIdentity(id)
}

func (l *Logins) forget(hash string) {
	l.mu.Lock()
	delete(l.tokens, hash)
	l.mu.Unlock()
}

func (l *Logins) refreshPolicy(ctx context.Context) error {
	if l.cfg.RefreshUsers == nil {
		return nil
	}
	return l.cfg.RefreshUsers(ctx)
}

// ssoTTL is the life of an SSO login's token: the shortest of the daemon's
// maximum, the ID token's remaining life and the provider's cap.
func (l *Logins) ssoTTL(id sso.Identity, now time.Time) time.Duration {
	ttl := l.cfg.TokenTTL
	if left := id.Expiry.Sub(now); left < ttl {
		ttl = left
	}
	if id.MaxLifetime > 0 && id.MaxLifetime < ttl {
		ttl = id.MaxLifetime
	}
	return ttl.Truncate(time.Second)
}

// sealRefresh seals the provider's refresh token under a key derived from
// the bearer token (which is stored only as its hash), so that neither a
// copy of the database nor the daemon at rest holds a usable refresh
// token: only the holder of the bearer token makes it usable again.
func sealRefresh(rand io.Reader, token, hash, refresh string) ([]byte, error) {
	if refresh == "" {
		return nil, nil
	}
	return sso.Seal(rand, token, sso.SealRefresh, []byte(hash), []byte(refresh))
}

func unsealRefresh(token, hash string, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	plain, err := sso.Open(token, sso.SealRefresh, []byte(hash), sealed)
	if err != nil {
		return "", fmt.Errorf("sealed refresh token: %w", err)
	}
	return string(plain), nil
}

// newBearer draws a bearer token.
func (l *Logins) newBearer() (string, error) {
	raw := make([]byte, 32)
	if _, err := io.ReadFull(l.cfg.Rand, raw); err != nil {
		return "", fmt.Errorf("draw token: %w", err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

func boundedList(groups []string) string {
	return audit.BoundText(strings.Join(groups, ","), 4*maxAuditText)
}

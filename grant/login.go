package grant

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sshkey"
	"github.com/jitssh/jitssh/sso"
)

// DefaultTokenTTL is the life of a bearer token unless configured otherwise.
const DefaultTokenTTL = 8 * time.Hour

const (
	challengeTTL = time.Minute
	tokenPrefix  = "jit_"
	// tokenRecheck bounds how long a token found in the store is trusted
	// from memory before the store is asked again. Tokens are never changed
	// in place, only added and left to expire, so the cache saves a store
	// read per request without changing an answer; a removed user is still
	// refused at once (the policy check is not cached).
	tokenRecheck = 30 * time.Second
	// maxCachedTokens bounds the memory the cache may take.
	maxCachedTokens = 10000
)

// LoginConfig holds what Logins needs. Store, Policy and Message are
// required.
type LoginConfig struct {
	Store *audit.Store
	// Policy returns the policy in force, with enrolled users merged in.
	Policy func() *policy.Policy
	// Message returns the exact bytes a client signs to log in as user with
	// nonce. The API binds its TLS certificate in, so that a signature
	// cannot be relayed to another server.
	Message func(user, nonce string) []byte
	// TokenTTL is the longest life of a bearer token; zero means
	// DefaultTokenTTL.
	TokenTTL time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Rand is the source of nonces and tokens; nil means crypto/rand.
	Rand io.Reader
	// SSO is the OpenID relying party; nil means no SSO login.
	SSO *sso.RP
	// RefreshUsers merges the stored SSO identities into the policy in
	// force after an SSO login (livepolicy.Holder.RefreshUsers); nil means
	// the policy is not refreshed.
	RefreshUsers func(ctx context.Context) error
	// Logger gets what fails after a login was committed; nil discards.
	Logger *slog.Logger
}

// Logins proves who a caller is: a login signs a one-use challenge with an
// enrolled key and gets a bearer token, which is stored only as its SHA-256.
// Every login outcome, success and each refusal with its code, is recorded
// here. It is safe for concurrent use.
type Logins struct {
	cfg LoginConfig

	challenges *nonces

	mu         sync.Mutex
	tokens     map[string]cachedToken  // by token hash
	refreshing map[string]*refreshLock // by token hash, while refreshed
}

type cachedToken struct {
	user             string
	sso              bool // the token has an sso_logins row
	expires, recheck time.Time
}

// NewLogins returns Logins, or an error naming the missing configuration.
func NewLogins(cfg LoginConfig) (*Logins, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("grant: login config: Store is required")
	case cfg.Policy == nil:
		return nil, errors.New("grant: login config: Policy is required")
	case cfg.Message == nil:
		return nil, errors.New("grant: login config: Message is required")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Logins{cfg: cfg, challenges: newNonces(cfg.Store, challengeTTL, purposeLogin, "logins", 0), tokens: map[string]cachedToken{}}, nil
}

func (l *Logins) now() time.Time { return l.cfg.Clock().UTC() }

// ForgetUser drops what Authenticate remembers of user's tokens, so that
// the next request with one asks the store again: the change feed calls it
// when another replica deleted or replaced one of them (login.revoked, a
// refresh, a console logout, a removal), which this one's cache would
// otherwise trust for up to 30 seconds.
func (l *Logins) ForgetUser(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for hash, ct := range l.tokens {
		if ct.user == user {
			delete(l.tokens, hash)
		}
	}
}

// Challenge starts a login of user asked for from clientAddr: it returns a
// nonce to sign, valid once for a minute, at whichever replica of the
// store it is answered. Too many unanswered challenges, of the address
// (an IPv6 /64 counts as one) or in total, is KindUnavailable with
// CodeBusy.
func (l *Logins) Challenge(ctx context.Context, user, clientAddr string) (nonce string, expires time.Time, err error) {
	if err := policy.ValidName("user", user); err != nil {
		return "", time.Time{}, &Error{Kind: KindInvalid, Code: CodeInvalidUser, Message: err.Error()}
	}
	return l.challenges.issue(ctx, l.cfg.Rand, user, clientAddr, l.now())
}

// LoginAttempt is a signed answer to a challenge, as the client sent it.
type LoginAttempt struct {
	User  string
	Nonce string
	// PublicKey is the enrolled key, in authorized_keys form.
	PublicKey string
	// Signature is base64 of an SSH signature over Message(User, Nonce).
	Signature string
	// TTL asks for a shorter token life ("1h"); empty means the longest.
	TTL        string
	ClientAddr string
}

// Token is a bearer token issued by a login.
type Token struct {
	Token     string
	User      string
	ExpiresAt time.Time
	Admin     bool
	Auditor   bool
}

// Login checks the attempt and issues a token, recording login (code ok) in
// the transaction that stores the token's hash. Each refusal is recorded as
// login.failed with its code: KindUnauthenticated for a bad challenge, an
// unknown user, a key not enrolled, a key that several users hold
// (CodeKeyShared) or a signature that does not verify;
// KindInvalid for malformed keys, signatures and TTLs.
func (l *Logins) Login(ctx context.Context, at LoginAttempt) (Token, error) {
	now := l.now()
	// The key, user, signature and TTL are decided first, outside the
	// store's writer (a signature check takes a while, and the writer is
	// every caller's); the challenge is spent in the one transaction that
	// records the outcome, whatever it is, and its refusal comes first.
	key, ttl, pol, err := l.check(at)
	var decided *Error
	if err != nil && !errors.As(err, &decided) {
		decided = &Error{Kind: KindInternal, Code: CodeInternal, Message: "login check failed", Err: err}
	}
	var token string
	var t audit.Token
	if decided == nil {
		raw := make([]byte, 32)
		if _, err := io.ReadFull(l.cfg.Rand, raw); err != nil {
			return Token{}, fmt.Errorf("draw token: %w", err)
		}
		token = tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
		t = audit.Token{Hash: hashToken(token), User: at.User, IssuedAt: now, ExpiresAt: now.Add(ttl)}
	}
	var refusal *Error
	err = l.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		ok, err := l.challenges.take(tx, at.Nonce, at.User, now)
		if err != nil {
			return err
		}
		if refusal = decided; !ok {
			refusal = newError(KindUnauthenticated, CodeBadChallenge, "login challenge unknown, expired or for another user; start again")
		}
		if refusal != nil {
			_, err := tx.Append(audit.Event{Time: now, Type: "login.failed", Code: refusal.Code, User: audit.BoundText(at.User, maxAuditText),
				ClientAddr: at.ClientAddr, Message: audit.BoundText(refusal.Message, 4*maxAuditText)})
			return err
		}
		if err := tx.InsertToken(t); err != nil {
			return err
		}
		_, err = tx.Append(audit.Event{Time: now, Type: "login", Code: "ok", Actor: at.User, User: at.User, ClientAddr: at.ClientAddr,
			Data: map[string]string{"method": MethodKey, "key_fingerprint": ssh.FingerprintSHA256(key), "expires_at": t.ExpiresAt.Format(time.RFC3339)}})
		return err
	})
	if refusal != nil {
		return Token{}, withRecordFailure(refusal, err)
	}
	if err != nil {
		return Token{}, unavailable(err)
	}
	return Token{Token: token, User: at.User, ExpiresAt: t.ExpiresAt, Admin: pol.IsAdmin(at.User), Auditor: pol.IsAuditor(at.User)}, nil
}

// check decides a login attempt but for its challenge: the key, the user,
// the signature and the TTL, in that order.
func (l *Logins) check(at LoginAttempt) (ssh.PublicKey, time.Duration, *policy.Policy, error) {
	key, err := sshkey.ParseAuthorized(at.PublicKey)
	if err != nil {
		return nil, 0, nil, &Error{Kind: KindInvalid, Code: CodeInvalidPublicKey, Message: err.Error()}
	}
	pol := l.cfg.Policy()
	u, ok := pol.User(at.User)
	if !ok {
		return nil, 0, nil, newError(KindUnauthenticated, string(policy.ReasonUnknownUser), "user %q is not enrolled", at.User)
	}
	if !hasKey(u, key) {
		return nil, 0, nil, newError(KindUnauthenticated, CodeKeyNotEnrolled, "key %s is not enrolled for %q", ssh.FingerprintSHA256(key), at.User)
	}
	sig, err := parseSignature(at.Signature)
	if err != nil {
		return nil, 0, nil, &Error{Kind: KindInvalid, Code: CodeBadSignature, Message: err.Error()}
	}
	if err := key.Verify(l.cfg.Message(at.User, at.Nonce), sig); err != nil {
		return nil, 0, nil, newError(KindUnauthenticated, CodeBadSignature, "signature does not verify with the enrolled key")
	}
	// Only to the key's holder, who proved it, is either told.
	if !pol.KeyLoginAllowed(at.User) {
		return nil, 0, nil, newError(KindForbidden, CodeKeyLoginDisabled, "key login is turned off for %q (policy sso.key_login %s); log in with jit login --sso", at.User, pol.SSO.KeyLogin)
	}
	if owners := keyOwners(pol, key); len(owners) > 1 {
		return nil, 0, nil, sharedKeyError(key, owners)
	}
	ttl, err := l.tokenTTL(at.TTL)
	return key, ttl, pol, err
}

// tokenTTL is the life of a new token: the one asked for, at most the
// configured one.
func (l *Logins) tokenTTL(asked string) (time.Duration, error) {
	if asked == "" {
		return l.cfg.TokenTTL, nil
	}
	d, err := parseTTL("ttl", asked)
	if err != nil {
		return 0, &Error{Kind: KindInvalid, Code: string(policy.ReasonTTLInvalid), Message: err.Error()}
	}
	if d > l.cfg.TokenTTL {
		return 0, newError(KindInvalid, string(policy.ReasonTTLTooLong), "token ttl %s exceeds the maximum %s", d, l.cfg.TokenTTL)
	}
	return d, nil
}

// parseTTL parses a duration such as "10m"; empty means zero (the default).
func parseTTL(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a duration such as 10m", field, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s %q must be positive", field, v)
	}
	return d, nil
}

func hasKey(u policy.User, key ssh.PublicKey) bool {
	want := key.Marshal()
	for _, k := range u.Keys {
		if bytes.Equal(k.Marshal(), want) {
			return true
		}
	}
	return false
}

func parseSignature(text string) (*ssh.Signature, error) {
	blob, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("signature is not base64: %w", err)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(blob, sig); err != nil {
		return nil, fmt.Errorf("signature is not an SSH signature: %w", err)
	}
	if sig.Format == ssh.KeyAlgoRSA {
		// SHA-1, which OpenSSH refuses too; jit signs RSA with rsa-sha2-512.
		return nil, errors.New("signature is ssh-rsa (SHA-1); sign with rsa-sha2-256 or rsa-sha2-512")
	}
	return sig, nil
}

// hashToken is how tokens are stored: a leaked database does not leak
// usable tokens.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Authenticate returns the user a bearer token belongs to. Every failure is
// KindUnauthenticated with CodeUnauthenticated and a message saying what to
// do; failures are not recorded (a scanner's noise would drown the log).
func (l *Logins) Authenticate(ctx context.Context, token string) (string, error) {
	refuse := func(err error, format string, args ...any) (string, error) {
		return "", &Error{Kind: KindUnauthenticated, Code: CodeUnauthenticated, Message: fmt.Sprintf(format, args...), Err: err}
	}
	if len(token) <= len(tokenPrefix) || token[:len(tokenPrefix)] != tokenPrefix {
		return refuse(nil, "missing bearer token; run jit login")
	}
	now := l.now()
	hash := hashToken(token)
	l.mu.Lock()
	ct, cached := l.tokens[hash]
	l.mu.Unlock()
	if !cached || !now.Before(ct.recheck) {
		t, err := l.cfg.Store.Token(ctx, hash)
		if errors.Is(err, audit.ErrNotFound) {
			return refuse(nil, "token is not valid; run jit login")
		}
		if err != nil {
			// The store failed, not the caller: 503, and the store's own
			// error stays in the daemon (Err), never in the answer.
			return "", unavailable(fmt.Errorf("look up token: %w", err))
		}
		isSSO, err := l.cfg.Store.IsSSOLogin(ctx, hash)
		if err != nil {
			return "", unavailable(fmt.Errorf("look up token: %w", err))
		}
		ct = cachedToken{user: t.User, sso: isSSO, expires: t.ExpiresAt, recheck: now.Add(tokenRecheck)}
		l.mu.Lock()
		if len(l.tokens) >= maxCachedTokens {
			clear(l.tokens)
		}
		l.tokens[hash] = ct
		l.mu.Unlock()
	}
	if !now.Before(ct.expires) {
		return refuse(nil, "token expired; run jit login")
	}
	pol := l.cfg.Policy()
	if _, ok := pol.User(ct.user); !ok {
		return refuse(nil, "user %q is no longer enrolled", ct.user)
	}
	if ct.sso && pol.LocalUser(ct.user) {
		// The name became a local user's (the file or an enrolment)
		// after this SSO login: the SSO person must not get its roles.
		l.revokeTakenOver(ctx, hash, ct.user, now)
		return refuse(nil, "user %q is now a local user; this sso login no longer counts; run jit login", ct.user)
	}
	return ct.user, nil
}

// Role is a role an operation may need beyond being an enrolled user.
type Role string

// Roles checked by Authorize.
const (
	// RoleAdmin is the policy's admins.
	RoleAdmin Role = "admin"
	// RoleAuditor is the policy's auditors; admins have it too.
	RoleAuditor Role = "auditor"
)

// HasRole reports whether user has role in the policy in force.
func (l *Logins) HasRole(user string, role Role) bool { return hasRole(l.cfg.Policy(), user, role) }

// hasRole is the one rule of who holds a role: admins are auditors too.
func hasRole(p *policy.Policy, user string, role Role) bool {
	switch role {
	case RoleAdmin:
		return p.IsAdmin(user)
	case RoleAuditor:
		return p.IsAuditor(user) || p.IsAdmin(user)
	}
	return false
}

// Authorize refuses caller an operation (named by what, such as "POST
// /v1/admin/reload") that needs role they lack, recording access.denied
// with code not_ROLE. The refusal is KindForbidden and stands even if its
// record fails.
func (l *Logins) Authorize(ctx context.Context, caller Caller, role Role, what string) error {
	return authorize(ctx, l.cfg.Store, l.now(), l.HasRole(caller.User, role), caller, role, what)
}

// authorize is Authorize for the API and the console alike: nothing when
// allowed, else the refusal and its access.denied record.
func authorize(ctx context.Context, store *audit.Store, now time.Time, allowed bool, caller Caller, role Role, what string) error {
	if allowed {
		return nil
	}
	code := "not_" + string(role)
	msg := fmt.Sprintf("%s needs the %s role", audit.BoundText(what, 2*maxAuditText), role)
	rerr := appendEvent(ctx, store, now, audit.Event{Type: "access.denied", Code: code, Actor: caller.User, User: caller.User,
		ClientAddr: caller.ClientAddr, Message: msg})
	return withRecordFailure(&Error{Kind: KindForbidden, Code: code, Message: msg}, rerr)
}

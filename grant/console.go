package grant

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
)

// Limits of the web console's secrets.
const (
	// ConsoleCodeTTL is how long a one-time console login code is valid.
	ConsoleCodeTTL = time.Minute
	// MinShareTTL is the shortest life a share link may be given.
	MinShareTTL = time.Minute
	// consoleTokenRecheck is how long Session trusts that a console
	// session's bearer token still exists, as Authenticate caches tokens.
	consoleTokenRecheck = 10 * time.Second
	maxConsoleTokens    = 4096
)

// Codes of the web console's outcomes.
const (
	CodeConsoleCodeInvalid = "console_code_invalid"
	CodeConsoleCodeUsed    = "console_code_used"
	CodeConsoleCodeExpired = "console_code_expired"
	CodeConsoleSession     = "console_session_invalid"
	CodeShareInvalid       = "share_invalid"
	CodeShareTTL           = "share_ttl_invalid"
	CodeNotShareOwner      = "not_share_owner"
)

const (
	consolePrefix = "jitc_"
	sharePrefix   = "jits_"
)

// ConsoleConfig holds what Console needs; Store and Policy are required.
type ConsoleConfig struct {
	Store *audit.Store
	// Policy returns the policy in force: enrolment, roles and
	// console.share_max.
	Policy func() *policy.Policy
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Rand is the source of codes, cookies and share tokens; nil means
	// crypto/rand.
	Rand io.Reader
}

// Console is the domain of the web console: one-time login codes, console
// sessions, share links of recordings. Every secret is stored as its
// SHA-256; every login, logout, share link made, used and revoked is
// recorded here, and no share link opens a recording unrecorded.
type Console struct {
	cfg ConsoleConfig

	mu     sync.Mutex
	tokens map[string]time.Time // token hash -> when to look it up again
}

// NewConsole returns Console, or an error naming the missing configuration.
func NewConsole(cfg ConsoleConfig) (*Console, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("grant: console config: Store is required")
	case cfg.Policy == nil:
		return nil, errors.New("grant: console config: Policy is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &Console{cfg: cfg, tokens: map[string]time.Time{}}, nil
}

func (c *Console) now() time.Time { return c.cfg.Clock().UTC() }

func (c *Console) secret(prefix string) (string, error) {
	raw := make([]byte, 32)
	if _, err := io.ReadFull(c.cfg.Rand, raw); err != nil {
		return "", fmt.Errorf("draw console secret: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

// TokenExpiry returns when the bearer token expires, for a console
// session that must not outlive it. The token must already have passed
// Authenticate.
func (l *Logins) TokenExpiry(ctx context.Context, token string) (time.Time, error) {
	t, err := l.cfg.Store.Token(ctx, hashToken(token))
	if err != nil {
		return time.Time{}, &Error{Kind: KindUnauthenticated, Code: CodeUnauthenticated, Message: "token is not valid; run jit login", Err: err}
	}
	return t.ExpiresAt, nil
}

// IssueCode makes a one-time console login code for caller, valid for
// ConsoleCodeTTL; the console session it becomes ends at sessionExpires
// (the expiry of the caller's bearer token) or when token is deleted,
// whichever comes first. Only hashes are stored. Codes and console
// sessions that can no longer be used are pruned on the way.
func (c *Console) IssueCode(ctx context.Context, caller Caller, token string, sessionExpires time.Time) (code string, expires time.Time, err error) {
	now := c.now()
	if !now.Before(sessionExpires) {
		return "", time.Time{}, newError(KindUnauthenticated, CodeUnauthenticated, "token expired; run jit login")
	}
	if code, err = c.secret(consolePrefix); err != nil {
		return "", time.Time{}, err
	}
	expires = now.Add(ConsoleCodeTTL)
	err = c.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if _, err := tx.PruneConsole(now); err != nil {
			return err
		}
		return tx.InsertConsoleCode(audit.ConsoleCode{Hash: hashToken(code), User: caller.User, TokenHash: hashToken(token), SessionExpiresAt: sessionExpires, CreatedAt: now, ExpiresAt: expires})
	})
	if err != nil {
		return "", time.Time{}, unavailable(err)
	}
	return code, expires, nil
}

// ConsoleLogin is a console session just started: Cookie is its secret,
// for the browser only.
type ConsoleLogin struct {
	Cookie    string
	CSRF      string
	User      string
	ExpiresAt time.Time
}

// Login spends a one-time code and starts the console session it was made
// for. An unknown, used or expired code is KindUnauthenticated, recorded
// as console.login_failed with its code; a code is spent by its first
// use whatever the outcome.
func (c *Console) Login(ctx context.Context, code, clientAddr string) (ConsoleLogin, error) {
	now := c.now()
	var cc audit.ConsoleCode
	err := c.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		cc, err = tx.SpendConsoleCode(hashToken(code), now)
		return err
	})
	var gerr *Error
	switch {
	case errors.Is(err, audit.ErrNotFound):
		gerr = newError(KindUnauthenticated, CodeConsoleCodeInvalid, "console login code is not valid; run jit console again")
	case errors.Is(err, audit.ErrConflict):
		gerr = newError(KindUnauthenticated, CodeConsoleCodeUsed, "console login code was already used; run jit console again")
	case err != nil:
		return ConsoleLogin{}, unavailable(err)
	case !now.Before(cc.ExpiresAt):
		gerr = newError(KindUnauthenticated, CodeConsoleCodeExpired, "console login code expired; run jit console again")
	}
	if gerr != nil {
		rerr := appendEvent(ctx, c.cfg.Store, now, audit.Event{Type: "console.login_failed", Code: gerr.Code, User: cc.User, Actor: cc.User, ClientAddr: clientAddr})
		return ConsoleLogin{}, withRecordFailure(gerr, rerr)
	}
	return c.startSession(ctx, cc.User, cc.TokenHash, clientAddr, cc.SessionExpiresAt, "code")
}

// CodeUser returns the user a one-time code would log in, without
// spending it, so that the login page can ask "log in as USER?" before
// it does (an attacker's code, opened by a victim, must not log the
// victim in as the attacker unnoticed). Any code that Login would refuse
// is KindUnauthenticated; nothing is recorded (nothing happened).
func (c *Console) CodeUser(ctx context.Context, code string) (string, error) {
	cc, err := c.cfg.Store.ConsoleCode(ctx, hashToken(code))
	switch {
	case errors.Is(err, audit.ErrNotFound):
		return "", newError(KindUnauthenticated, CodeConsoleCodeInvalid, "console login code is not valid; run jit console again")
	case err != nil:
		return "", unavailable(err)
	case !cc.UsedAt.IsZero():
		return "", newError(KindUnauthenticated, CodeConsoleCodeUsed, "console login code was already used; run jit console again")
	case !c.now().Before(cc.ExpiresAt):
		return "", newError(KindUnauthenticated, CodeConsoleCodeExpired, "console login code expired; run jit console again")
	}
	return cc.User, nil
}

// StartSession starts a console session for user, an identity already
// proved by via ("code" for jit console; an SSO login calls it with its own
// method), ending at expires or when the jitssh bearer token is deleted,
// and records console.login. This is the seam SSO logins use: prove the
// user, then call StartSession with the token that login issued and its
// expiry.
func (c *Console) StartSession(ctx context.Context, user, token, clientAddr string, expires time.Time, via string) (ConsoleLogin, error) {
	return c.startSession(ctx, user, hashToken(token), clientAddr, expires, via)
}

func (c *Console) startSession(ctx context.Context, user, tokenHash, clientAddr string, expires time.Time, via string) (ConsoleLogin, error) {
	now := c.now()
	if _, ok := c.cfg.Policy().User(user); !ok {
		return ConsoleLogin{}, newError(KindUnauthenticated, string(policy.ReasonUnknownUser), "user %q is not enrolled", user)
	}
	if !now.Before(expires) {
		return ConsoleLogin{}, newError(KindUnauthenticated, CodeUnauthenticated, "the login of %q has expired; log in again", user)
	}
	cookie, err := c.secret(consolePrefix)
	if err != nil {
		return ConsoleLogin{}, err
	}
	csrf, err := c.secret("")
	if err != nil {
		return ConsoleLogin{}, err
	}
	err = c.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.InsertConsoleSession(audit.ConsoleSession{Hash: hashToken(cookie), User: user, TokenHash: tokenHash, CSRF: csrf, ClientAddr: clientAddr, CreatedAt: now, ExpiresAt: expires}); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "console.login", Code: audit.BoundText(via, maxAuditText), Actor: user, User: user, ClientAddr: clientAddr,
			Data: map[string]string{"expires_at": expires.Format(time.RFC3339)}})
		return err
	})
	if err != nil {
		return ConsoleLogin{}, unavailable(err)
	}
	return ConsoleLogin{Cookie: cookie, CSRF: csrf, User: user, ExpiresAt: expires}, nil
}

// ConsoleSession is a console session in force.
type ConsoleSession struct {
	User      string
	CSRF      string
	ExpiresAt time.Time
}

// Session returns the console session of cookie: KindUnauthenticated
// unless it exists, has not ended or expired, the jitssh token it was made
// from still exists (looked up again every consoleTokenRecheck), and its
// user is still enrolled. Failures are not recorded (as bearer tokens' are
// not).
func (c *Console) Session(ctx context.Context, cookie string) (ConsoleSession, error) {
	refuse := newError(KindUnauthenticated, CodeConsoleSession, "console session is not valid; run jit console")
	if len(cookie) <= len(consolePrefix) || cookie[:len(consolePrefix)] != consolePrefix {
		return ConsoleSession{}, refuse
	}
	cs, err := c.cfg.Store.ConsoleSession(ctx, hashToken(cookie))
	if errors.Is(err, audit.ErrNotFound) {
		return ConsoleSession{}, refuse
	}
	if err != nil {
		return ConsoleSession{}, unavailable(err)
	}
	if !cs.EndedAt.IsZero() || !c.now().Before(cs.ExpiresAt) {
		return ConsoleSession{}, refuse
	}
	if _, ok := c.cfg.Policy().User(cs.User); !ok {
		return ConsoleSession{}, refuse
	}
	if err := c.tokenLives(ctx, cs.TokenHash); err != nil {
		if errors.Is(err, audit.ErrNotFound) {
			return ConsoleSession{}, refuse
		}
		return ConsoleSession{}, unavailable(err)
	}
	return ConsoleSession{User: cs.User, CSRF: cs.CSRF, ExpiresAt: cs.ExpiresAt}, nil
}

// tokenLives returns nil if the bearer token with hash exists (cached for
// consoleTokenRecheck), audit.ErrNotFound if it is gone: an SSO refresh
// refused, jit logout or an admin deletes it, and the console session
// made from it ends with it.
func (c *Console) tokenLives(ctx context.Context, hash string) error {
	now := c.now()
	c.mu.Lock()
	recheck, ok := c.tokens[hash]
	c.mu.Unlock()
	if ok && now.Before(recheck) {
		return nil
	}
	if _, err := c.cfg.Store.Token(ctx, hash); err != nil {
		c.mu.Lock()
		delete(c.tokens, hash)
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	if len(c.tokens) >= maxConsoleTokens {
		clear(c.tokens)
	}
	c.tokens[hash] = now.Add(consoleTokenRecheck)
	c.mu.Unlock()
	return nil
}

// ForgetTokens drops what Session remembers of bearer tokens being alive,
// so that the next page asks the store: the change feed calls it when
// another replica deleted a token.
func (c *Console) ForgetTokens() {
	c.mu.Lock()
	clear(c.tokens)
	c.mu.Unlock()
}

// Logout ends the console session of cookie server-side and records
// console.logout; a session already ended or unknown is KindUnauthenticated.
func (c *Console) Logout(ctx context.Context, caller Caller, cookie string) error {
	now := c.now()
	err := c.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.EndConsoleSession(hashToken(cookie), now); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "console.logout", Code: "ok", Actor: caller.User, User: caller.User, ClientAddr: caller.ClientAddr})
		return err
	})
	if errors.Is(err, audit.ErrNotFound) {
		return newError(KindUnauthenticated, CodeConsoleSession, "console session already ended")
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// HasRole reports whether user has role in the policy in force, as
// Logins.HasRole.
func (c *Console) HasRole(user string, role Role) bool { return hasRole(c.cfg.Policy(), user, role) }

// Authorize refuses caller a console page or action (what) that needs role
// they lack, recording access.denied with code not_ROLE, as the API does.
func (c *Console) Authorize(ctx context.Context, caller Caller, role Role, what string) error {
	return authorize(ctx, c.cfg.Store, c.now(), c.HasRole(caller.User, role), caller, role, what)
}

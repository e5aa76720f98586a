package grant

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ratelimit"
)

// DefaultLoginLimit bounds login challenges and login attempts, each, per
// client address: 30 a minute. The default limits are well above what
// honest people do (a login is two calls; a busy engineer asks for a few
// grants an hour; an office behind one NAT address logs in together at
// nine) and well below what guessing or flooding needs.
func DefaultLoginLimit() ratelimit.Limit { return ratelimit.Limit{Events: 30, Per: time.Minute} }

// DefaultRequestLimit bounds request creation per authenticated user: 60 a
// minute.
func DefaultRequestLimit() ratelimit.Limit { return ratelimit.Limit{Events: 60, Per: time.Minute} }

// CodeRateLimited is the code of a refusal for too many calls in a period.
const CodeRateLimited = "rate_limited"

// ThrottleConfig configures a Throttle; zero limits take the defaults.
type ThrottleConfig struct {
	Store *audit.Store
	// Login bounds login challenges and attempts per client address.
	Login ratelimit.Limit
	// Requests bounds request creation per user.
	Requests ratelimit.Limit
	Clock    func() time.Time
}

// Throttle decides whether a login or a request creation may go ahead now,
// and records the first refusal of each client (or user) in each period of
// the limit as one ratelimit.refused event, so that a flood of refused
// calls cannot flood the audit log.
type Throttle struct {
	store            *audit.Store
	clock            func() time.Time
	challenge, login *ratelimit.Limiter
	requests         *ratelimit.Limiter
}

// NewThrottle returns a Throttle, or an error naming the bad configuration.
func NewThrottle(cfg ThrottleConfig) (*Throttle, error) {
	if cfg.Store == nil {
		return nil, errors.New("grant: throttle config: Store is required")
	}
	if cfg.Login == (ratelimit.Limit{}) {
		cfg.Login = DefaultLoginLimit()
	}
	if cfg.Requests == (ratelimit.Limit{}) {
		cfg.Requests = DefaultRequestLimit()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	t := &Throttle{store: cfg.Store, clock: cfg.Clock}
	var err error
	if t.challenge, err = ratelimit.New(cfg.Login); err != nil {
		return nil, fmt.Errorf("grant: login limit: %w", err)
	}
	t.login, _ = ratelimit.New(cfg.Login)
	if t.requests, err = ratelimit.New(cfg.Requests); err != nil {
		return nil, fmt.Errorf("grant: request limit: %w", err)
	}
	return t, nil
}

// Challenge allows one login challenge from clientAddr, or returns a
// KindRateLimited *Error with RetryAfter set.
func (t *Throttle) Challenge(ctx context.Context, clientAddr string) error {
	return t.allow(ctx, t.challenge, "login challenges", ratelimit.AddressKey(clientAddr), Caller{ClientAddr: clientAddr})
}

// Login allows one login attempt from clientAddr, as Challenge.
func (t *Throttle) Login(ctx context.Context, clientAddr string) error {
	return t.allow(ctx, t.login, "login attempts", ratelimit.AddressKey(clientAddr), Caller{ClientAddr: clientAddr})
}

// CreateRequest allows one request creation by c.User, as Challenge.
func (t *Throttle) CreateRequest(ctx context.Context, c Caller) error {
	return t.allow(ctx, t.requests, "requests", c.User, c)
}

func (t *Throttle) allow(ctx context.Context, l *ratelimit.Limiter, what, key string, c Caller) error {
	now := t.clock()
	v := l.Allow(key, now)
	if v.Allowed {
		return nil
	}
	secs := int(math.Ceil(v.RetryAfter.Seconds()))
	e := newError(KindRateLimited, CodeRateLimited, "too many %s from %s: at most %s; retry after %ds", what, key, l.Limit(), secs)
	e.RetryAfter = time.Duration(secs) * time.Second
	if v.FirstRefusal {
		// Recorded once per period of the limit; a failure to record is
		// no reason to let the call through.
		_ = appendEvent(ctx, t.store, now.UTC(), audit.Event{Type: "ratelimit.refused", Code: CodeRateLimited, Actor: c.User, User: c.User,
			ClientAddr: c.ClientAddr, Message: audit.BoundText(e.Message, 4*maxAuditText),
			Data: map[string]string{"limit": l.Limit().String(), "what": what, "retry_after_s": strconv.Itoa(secs)}})
	}
	return e
}

// Package grant is the lifecycle of an access request: it validates what the
// engineer sent, asks policy for a decision, records every step in the audit
// store and, only once the record is durably committed, has the CA sign.
//
// A request is pending, approved, denied, expired, cancelled or issued. A
// request that policy allows outright is issued at once; one that needs
// approval waits for distinct approvers and is then redeemed once for one
// certificate, after policy has been evaluated again.
package grant

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/issuance"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sshkey"
)

// Request states, as stored in the audit store.
const (
	StatePending   = "pending"
	StateApproved  = "approved"
	StateDenied    = "denied"
	StateExpired   = "expired"
	StateCancelled = "cancelled"
	StateIssued    = "issued"
)

// Backdate is how far before now a certificate becomes valid, to absorb clock
// skew between the CA and the hosts. It is never more than a minute.
const Backdate = time.Minute

// defaultRequestTTL is how long a request waits for approval when the
// decision names no wait (policy.Parse always does; a policy built in code
// may not, and a zero wait would expire the request the moment it is made).
const defaultRequestTTL = 30 * time.Minute

// maxNameText bounds a request's host and login in audit rows: a refused
// request's host or login is recorded, but not a megabyte of it.
const maxNameText = 256

// maxPublicKeyLen bounds the public key text a client may send; the largest
// legitimate key (RSA 8192 with a comment) is well under it.
const maxPublicKeyLen = 8192

// Notifier receives lifecycle notifications after they are committed. It must
// not block: delivery (webhooks) is asynchronous.
type Notifier interface {
	Notify(n Notification)
}

// Notification describes one lifecycle step for people watching requests.
type Notification struct {
	Event      string // "request.created", "request.approved", "request.denied", "request.expired", "request.break_glass", "request.cancelled"
	Request    audit.Request
	Actor      string
	Reason     string
	Approvals  int
	BreakGlass bool
	Time       time.Time
}

// Config holds what a Service needs. Policy, Store and Keys are required.
type Config struct {
	// Policy returns the policy in force, with enrolled users merged in.
	Policy func() *policy.Policy
	Store  *audit.Store
	Keys   *ca.Keys
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Rand is the source of serials and ids; nil means crypto/rand.
	Rand io.Reader
	// Notifier receives lifecycle notifications; nil means none.
	Notifier Notifier
}

// Service runs the request lifecycle. It is safe for concurrent use: every
// check-then-write runs inside one serialized audit transaction.
type Service struct {
	cfg Config
	iss *issuance.Issuer
}

// New returns a Service, or an error naming the missing configuration.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Policy == nil:
		return nil, errors.New("grant: config: Policy is required")
	case cfg.Store == nil:
		return nil, errors.New("grant: config: Store is required")
	case cfg.Keys == nil || cfg.Keys.User == nil || cfg.Keys.Target == nil:
		return nil, errors.New("grant: config: Keys with user and target CA are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	iss, err := issuance.New(issuance.Config{Store: cfg.Store, Keys: cfg.Keys, Rand: cfg.Rand, Clock: cfg.Clock})
	if err != nil {
		return nil, fmt.Errorf("grant: %w", err)
	}
	return &Service{cfg: cfg, iss: iss}, nil
}

// Caller identifies who asks, as established by authentication.
type Caller struct {
	User       string
	ClientAddr string
}

// CreateRequest is what an engineer asks for.
type CreateRequest struct {
	Host          string
	Login         string
	Justification string
	// TTL is the certificate lifetime asked for; zero means the role default.
	TTL time.Duration
	// PublicKey is the key to certify, in authorized_keys form.
	PublicKey  string
	BreakGlass bool
	// IdempotencyKey, when set, makes a retry within IdempotencyWindow
	// return this request's outcome instead of making another.
	IdempotencyKey string
}

// Result is the state of a request after an operation. Certificate is set
// only when the operation issued one.
type Result struct {
	Request     audit.Request
	Approvals   []audit.Approval
	Certificate *ssh.Certificate
}

func (s *Service) now() time.Time { return s.cfg.Clock().UTC().Truncate(time.Second) }

// Create validates, decides and, where policy allows outright, issues a
// certificate. A request that needs approval is stored as pending. Every
// refusal is audited with its reason code. A request with an
// IdempotencyKey the caller used within IdempotencyWindow is answered with
// the first request's outcome (its certificate too), never a second one.
func (s *Service) Create(ctx context.Context, caller Caller, req CreateRequest) (Result, error) {
	now := s.now()
	if req.IdempotencyKey != "" {
		if err := checkIdempotencyKey(req.IdempotencyKey); err != nil {
			return Result{}, s.deny(ctx, caller, req, now, &Error{Kind: KindInvalid, Code: CodeInvalidIdempotencyKey, Message: err.Error()})
		}
		if res, known, err := s.lookupKey(ctx, caller, req, now); known {
			return res, err
		}
	}
	key, err := parseKey(req.PublicKey)
	if err != nil {
		return Result{}, s.deny(ctx, caller, req, now, &Error{Kind: KindInvalid, Code: CodeInvalidPublicKey, Message: err.Error()})
	}
	id, err := s.newID("req")
	if err != nil {
		return Result{}, err
	}
	// No login asks for an ephemeral account, whose login is made here.
	ephemeral, login := req.Login == "", req.Login
	if ephemeral {
		var gerr *Error
		if login, gerr = s.ephemeralLogin(ctx, caller.User, req.Host, id); gerr != nil {
			return Result{}, s.deny(ctx, caller, req, now, gerr)
		}
	}
	pol := s.cfg.Policy()
	d := pol.Evaluate(policy.Request{
		User: caller.User, Host: req.Host, Login: login, Ephemeral: ephemeral,
		TTL: req.TTL, Justification: req.Justification, BreakGlass: req.BreakGlass,
	}, now)
	if d.Outcome == policy.Deny {
		kind := KindDenied
		if isInputReason(d.Reason) {
			kind = KindInvalid
		}
		return Result{}, s.deny(ctx, caller, req, now, &Error{Kind: kind, Code: string(d.Reason), Message: d.Message})
	}
	r := audit.Request{
		ID: id, User: caller.User, Host: req.Host, Login: login, Role: d.Role,
		Justification: req.Justification, TTL: d.TTL, PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))),
		BreakGlass: d.BreakGlass, CreatedAt: now, ClientAddr: caller.ClientAddr,
	}
	var res Result
	if d.Outcome == policy.NeedsApproval {
		res, err = s.createPending(ctx, caller, req, r, d, now)
	} else {
		res, err = s.createIssued(ctx, caller, req, r, key, d, now)
	}
	var gerr *Error
	if errors.As(err, &gerr) && gerr.Code == CodeAccountNameTaken {
		// The name raced another request's: nothing was recorded but
		// this refusal.
		return Result{}, s.deny(ctx, caller, req, now, gerr)
	}
	return res, err
}

// createPending stores r as pending, with its idempotency key.
func (s *Service) createPending(ctx context.Context, caller Caller, req CreateRequest, r audit.Request, d policy.Decision, now time.Time) (Result, error) {
	r.State = StatePending
	r.ApprovalsNeeded = d.Approval.Count
	requestTTL := d.RequestTTL
	if requestTTL <= 0 {
		requestTTL = defaultRequestTTL
	}
	r.ExpiresAt = now.Add(requestTTL)
	err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if req.IdempotencyKey != "" {
			if err := s.claimKey(tx, caller, req, r.ID, now); err != nil {
				return err
			}
			if err := tx.CompleteIdempotencyKey(caller.User, req.IdempotencyKey, ""); err != nil {
				return err
			}
		}
		if err := tx.InsertRequest(r); err != nil {
			return err
		}
		if err := planAccount(tx, r, d.Account); err != nil {
			return err
		}
		_, err := tx.Append(s.event("request.created", string(d.Reason), caller, r, now, "waiting for approval"))
		return err
	})
	if err != nil {
		if req.IdempotencyKey != "" && isKeyOutcome(err) {
			return s.replayed(ctx, caller, req, err)
		}
		return Result{}, unavailable(err)
	}
	s.notify(Notification{Event: "request.created", Request: r, Actor: caller.User, Reason: r.Justification, Time: now})
	return Result{Request: r}, nil
}

// createIssued records r as issued, with its idempotency key, and has the
// door sign its certificate.
func (s *Service) createIssued(ctx context.Context, caller Caller, req CreateRequest, r audit.Request, key ssh.PublicKey, d policy.Decision, now time.Time) (Result, error) {
	r.State = StateIssued
	r.DecidedAt = now
	r.DecisionReason = string(d.Reason)
	cert, err := s.issue(ctx, caller, &r, key, d, now, func(tx *audit.Tx) error {
		if req.IdempotencyKey != "" {
			if err := s.claimKey(tx, caller, req, r.ID, now); err != nil {
				return err
			}
		}
		if err := tx.InsertRequest(r); err != nil {
			return err
		}
		if err := planAccount(tx, r, d.Account); err != nil {
			return err
		}
		_, err := tx.Append(s.event("request.created", string(d.Reason), caller, r, now, r.Justification))
		return err
	})
	if req.IdempotencyKey != "" {
		switch {
		case err != nil && isKeyOutcome(err):
			return s.replayed(ctx, caller, req, err)
		case err != nil:
			s.releaseKey(ctx, caller, req.IdempotencyKey, r.ID)
		default:
			s.completeKey(ctx, caller, req.IdempotencyKey, cert)
		}
	}
	if err != nil {
		return Result{}, err
	}
	if d.BreakGlass {
		s.notify(Notification{Event: "request.break_glass", Request: r, Actor: caller.User, Reason: r.Justification, BreakGlass: true, Time: now})
	}
	return Result{Request: r, Certificate: cert}, nil
}

// issue has the door record the certificate and the issuance event,
// together with whatever pre does in the same transaction, and only then
// sign. r.Serial is set on success.
func (s *Service) issue(ctx context.Context, caller Caller, r *audit.Request, key ssh.PublicKey, d policy.Decision, now time.Time, pre func(tx *audit.Tx) error) (*ssh.Certificate, error) {
	spec := ca.UserCertSpec{
		Key:             key,
		KeyID:           fmt.Sprintf("jit:%s:%s", r.ID, r.User),
		Principals:      d.Principals,
		ValidAfter:      now.Add(-Backdate),
		ValidBefore:     now.Add(d.TTL),
		Extensions:      d.Extensions,
		CriticalOptions: d.CriticalOptions,
	}
	e := s.event(issuance.EventUserIssued, string(d.Reason), caller, *r, now, "")
	e.Data = map[string]string{"role": r.Role}
	if d.BreakGlass {
		e.Data["break_glass"] = "true"
	}
	cert, err := s.iss.User(ctx, spec, issuance.Record{
		Certificate: audit.Certificate{RequestID: r.ID, User: r.User, Host: r.Host, Login: r.Login, ClientAddr: caller.ClientAddr, IssuedAt: now},
		Event:       e,
		Pre: func(tx *audit.Tx, serial uint64) error {
			r.Serial = serial // pre writes the request with its certificate's serial
			return pre(tx)
		},
	})
	if err != nil {
		var ge *Error
		switch {
		case isKeyOutcome(err):
			return nil, err
		case errors.Is(err, audit.ErrConflict):
			// Serials collided three times, or the request changed state
			// under us; the former is all but impossible.
			return nil, &Error{Kind: KindConflict, Code: CodeAlreadyDecided, Message: fmt.Sprintf("request %s changed state", r.ID), Err: err}
		case errors.As(err, &ge):
			return nil, ge
		}
		return nil, issueError(err, "certificate signing failed")
	}
	return cert, nil
}

// issueError maps an error of the door that is not the caller's own.
func issueError(err error, signingMessage string) error {
	switch {
	case errors.Is(err, issuance.ErrInvalid):
		return &Error{Kind: KindInvalid, Code: CodeInvalidRequest, Message: err.Error()}
	case errors.Is(err, issuance.ErrSigning):
		return &Error{Kind: KindUnavailable, Code: CodeSigningFailed, Message: signingMessage, Err: err}
	case errors.Is(err, issuance.ErrRecord):
		return unavailable(err)
	}
	return err
}

// deny records a refusal and returns it. If the refusal cannot be recorded the
// caller still gets the refusal: nothing was signed either way.
func (s *Service) deny(ctx context.Context, caller Caller, req CreateRequest, now time.Time, gerr *Error) error {
	r := audit.Request{User: caller.User, Host: req.Host, Login: req.Login, Justification: req.Justification}
	e := s.event("request.denied", gerr.Code, caller, r, now, gerr.Message)
	if req.BreakGlass {
		e.Data = map[string]string{"break_glass": "true"}
	}
	err := s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		_, err := tx.Append(e)
		return err
	})
	if err != nil {
		gerr.Err = fmt.Errorf("audit of denial failed: %w", err)
	}
	return gerr
}

func (s *Service) event(typ, code string, caller Caller, r audit.Request, now time.Time, msg string) audit.Event {
	return audit.Event{
		Time: now, Type: typ, Code: code, Actor: caller.User, User: r.User, Host: audit.BoundText(r.Host, maxNameText), Login: audit.BoundText(r.Login, maxNameText),
		RequestID: r.ID, Serial: r.Serial, ClientAddr: caller.ClientAddr, Message: msg,
	}
}

func (s *Service) notify(n Notification) {
	if s.cfg.Notifier != nil {
		s.cfg.Notifier.Notify(n)
	}
}

// newID returns prefix_ and 26 characters of base32 (0-9, a-v): the
// clock's milliseconds since 1970 in 6 bytes, then 10 random bytes. The time
// comes first so that ids sort by creation: every index keyed by request id
// (the requests table itself, certificates and events by request) then
// grows at its end instead of at a random page, which is what makes the
// audit store's commits cheap under load. The 80 random bits keep ids
// unguessable; the creation time they reveal is in the request anyway.
func (s *Service) newID(prefix string) (string, error) {
	var b [16]byte
	ms := s.cfg.Clock().UnixMilli()
	if ms < 0 {
		ms = 0
	}
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := io.ReadFull(s.cfg.Rand, b[6:]); err != nil {
		return "", fmt.Errorf("draw %s id: %w", prefix, err)
	}
	return prefix + "_" + strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

func parseKey(text string) (ssh.PublicKey, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("public_key is missing")
	}
	if len(text) > maxPublicKeyLen {
		return nil, fmt.Errorf("public_key is %d bytes, over the %d byte limit", len(text), maxPublicKeyLen)
	}
	return sshkey.ParseAuthorized(text)
}

// isInputReason reports whether a policy reason is about malformed input
// rather than a policy refusal; both are audited, the API answers them
// differently (400 versus 403).
func isInputReason(r policy.Reason) bool {
	switch r {
	case policy.ReasonInvalidLogin, policy.ReasonInvalidHost, policy.ReasonTTLInvalid,
		policy.ReasonJustificationMissing, policy.ReasonJustificationTooLong, policy.ReasonJustificationInvalid:
		return true
	}
	return false
}

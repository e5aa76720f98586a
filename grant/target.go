package grant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/issuance"
)

// maxTargetCertLifetime bounds a per-session target certificate even if the
// engineer's certificate were to claim a longer life.
const maxTargetCertLifetime = 24 * time.Hour

// UserCertificate is what the bastion needs to know of an engineer's
// certificate before it opens a session.
type UserCertificate struct {
	audit.Certificate
	// Role is the role the request was granted under.
	Role string
	// RecordInput says whether the session's keystrokes are recorded.
	RecordInput bool
	// IdleTimeout is the role's idle_timeout: zero, or how long a session
	// may go without input before the bastion cuts it.
	IdleTimeout time.Duration
}

// CertificateStatus returns the stored record of a user certificate the CA
// issued. A serial the store does not know, or one of another kind, is an
// error: the bastion refuses certificates it cannot account for.
func (s *Service) CertificateStatus(ctx context.Context, serial uint64) (UserCertificate, error) {
	c, err := s.cfg.Store.Certificate(ctx, serial)
	if err != nil {
		if errors.Is(err, audit.ErrNotFound) {
			return UserCertificate{}, newError(KindNotFound, CodeCertificateUnknown, "certificate serial %d was not issued by this CA", serial)
		}
		return UserCertificate{}, unavailable(err)
	}
	if c.Kind != issuance.KindUser {
		return UserCertificate{}, newError(KindForbidden, CodeCertificateUnknown, "certificate serial %d is a %s certificate, not a user certificate", serial, c.Kind)
	}
	out := UserCertificate{Certificate: c}
	if c.RequestID != "" {
		r, err := s.cfg.Store.Request(ctx, c.RequestID)
		if err != nil {
			return UserCertificate{}, lookupError(c.RequestID, err)
		}
		out.Role = r.Role
		if role, ok := s.cfg.Policy().Role(r.Role); ok {
			out.RecordInput = role.RecordInput
			out.IdleTimeout = role.IdleTimeout
		}
	}
	return out, nil
}

// TargetCertRequest asks for the short certificate the bastion presents to a
// target host for one session.
type TargetCertRequest struct {
	RequestID, SessionID, User, Login, Host string
	// UserSerial is the serial of the engineer's certificate the session
	// was authenticated with. The target certificate permits what that
	// certificate was issued with (its stored record), never more.
	UserSerial uint64
	// UserCert, when set, is that certificate as presented; it must be
	// the one the CA issued under UserSerial (see PresentedCertificate).
	// The bastion always sets it.
	UserCert *ssh.Certificate
	// ValidBefore is the end of the engineer's certificate; the target
	// certificate never outlives it.
	ValidBefore time.Time
	// SourceAddresses are the bastion's egress addresses, as CIDRs.
	SourceAddresses []string
	// Key is the bastion's fresh per-session public key.
	Key ssh.PublicKey
}

// MintTargetCert has the door record and sign a target-CA certificate for
// one session: principal LOGIN@HOST, key id jit:REQUEST:SESSION:USER, the
// permit-* extensions the engineer's certificate UserSerial was issued with,
// valid no longer than it. The engineer's certificate must be a user
// certificate of the same request, user and principal, and not revoked.
func (s *Service) MintTargetCert(ctx context.Context, req TargetCertRequest) (*ssh.Certificate, error) {
	now := s.now()
	if req.Key == nil {
		return nil, newError(KindInvalid, CodeInvalidRequest, "target certificate request has no key")
	}
	// The key id jit:REQUEST:SESSION:USER is how sshd's log on the target
	// leads back to the session and its recording; every part must be there
	// and none may blur the separators.
	for _, f := range []struct{ name, value string }{
		{"request_id", req.RequestID}, {"session_id", req.SessionID}, {"user", req.User},
	} {
		if f.value == "" || strings.Contains(f.value, ":") {
			return nil, newError(KindInvalid, CodeInvalidRequest, "target certificate request: %s %q must be non-empty without ':'", f.name, f.value)
		}
	}
	if !req.ValidBefore.After(now) {
		return nil, newError(KindDenied, CodeCertificateExpired, "the engineer's certificate expired at %s", req.ValidBefore.Format(time.RFC3339))
	}
	issued, err := s.issuedFor(ctx, req)
	if err != nil {
		return nil, err
	}
	validBefore := req.ValidBefore
	if limit := now.Add(maxTargetCertLifetime); validBefore.After(limit) {
		validBefore = limit
	}
	if issued.ValidBefore.Before(validBefore) {
		validBefore = issued.ValidBefore
	}
	ext := map[string]string{}
	for name := range issued.Extensions {
		if strings.HasPrefix(name, "permit-") {
			ext[name] = ""
		}
	}
	crit := map[string]string{}
	if len(req.SourceAddresses) > 0 {
		crit[ca.OptSourceAddress] = strings.Join(req.SourceAddresses, ",")
	}
	spec := ca.UserCertSpec{
		Key:             req.Key,
		KeyID:           fmt.Sprintf("jit:%s:%s:%s", req.RequestID, req.SessionID, req.User),
		Principals:      []string{req.Login + "@" + req.Host},
		ValidAfter:      now.Add(-Backdate),
		ValidBefore:     validBefore,
		Extensions:      ext,
		CriticalOptions: crit,
	}
	cert, err := s.iss.Target(ctx, spec, issuance.Record{
		Certificate: audit.Certificate{RequestID: req.RequestID, SessionID: req.SessionID, User: req.User, Host: req.Host, Login: req.Login, IssuedAt: now},
		Event: audit.Event{Time: now, Code: "session", Actor: "bastion", User: req.User, Host: req.Host, Login: req.Login,
			RequestID: req.RequestID, SessionID: req.SessionID, Data: map[string]string{"user_serial": fmt.Sprint(req.UserSerial)}},
	})
	if err != nil {
		if errors.Is(err, audit.ErrConflict) {
			return nil, unavailable(err)
		}
		return nil, issueError(err, "target certificate signing failed")
	}
	return cert, nil
}

// issuedFor returns the stored record of the engineer's certificate that
// req names, refusing one that does not belong to req's request, user and
// principal, or that is revoked.
func (s *Service) issuedFor(ctx context.Context, req TargetCertRequest) (audit.Certificate, error) {
	if req.UserCert != nil && req.UserCert.Serial != req.UserSerial {
		return audit.Certificate{}, newError(KindForbidden, CodeCertificateMismatch, "certificate serial %d presented for serial %d", req.UserCert.Serial, req.UserSerial)
	}
	c, err := s.cfg.Store.Certificate(ctx, req.UserSerial)
	if err != nil {
		if errors.Is(err, audit.ErrNotFound) {
			return audit.Certificate{}, newError(KindNotFound, CodeCertificateUnknown, "certificate serial %d was not issued by this CA", req.UserSerial)
		}
		return audit.Certificate{}, unavailable(err)
	}
	if req.UserCert != nil {
		if field, got, want := certMismatch(c, s.cfg.Keys.User.PublicKey(), req.UserCert); field != "" {
			return audit.Certificate{}, mismatchError(c.Serial, field, got, want)
		}
	}
	principal := req.Login + "@" + req.Host
	switch {
	case c.Kind != issuance.KindUser:
		return audit.Certificate{}, newError(KindForbidden, CodeCertificateUnknown, "certificate serial %d is a %s certificate, not a user certificate", c.Serial, c.Kind)
	case c.RequestID != req.RequestID || c.User != req.User || !slices.Contains(c.Principals, principal):
		return audit.Certificate{}, newError(KindForbidden, CodeCertificateUnknown,
			"certificate serial %d was issued to %s for %s (request %s), not to %s for %s (request %s)",
			c.Serial, c.User, strings.Join(c.Principals, ","), c.RequestID, req.User, principal, req.RequestID)
	case !c.RevokedAt.IsZero():
		return audit.Certificate{}, newError(KindForbidden, CodeCertificateRevoked, "certificate serial %d was revoked at %s", c.Serial, c.RevokedAt.Format(time.RFC3339))
	}
	return c, nil
}

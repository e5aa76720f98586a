package grant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
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
	if c.Kind != "user" {
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
		}
	}
	return out, nil
}

// TargetCertRequest asks for the short certificate the bastion presents to a
// target host for one session.
type TargetCertRequest struct {
	RequestID, SessionID, User, Login, Host string
	// ValidBefore is the end of the engineer's certificate; the target
	// certificate never outlives it.
	ValidBefore time.Time
	// SourceAddresses are the bastion's egress addresses, as CIDRs.
	SourceAddresses []string
	// Key is the bastion's fresh per-session public key.
	Key ssh.PublicKey
	// Extensions are the permit-* extensions of the engineer's certificate
	// that the session needs on the target.
	Extensions map[string]string
}

// MintTargetCert records and signs a target-CA certificate for one session:
// principal LOGIN@HOST, key id jit:REQUEST:SESSION:USER.
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
		return nil, newError(KindDenied, "certificate_expired", "the engineer's certificate expired at %s", req.ValidBefore.Format(time.RFC3339))
	}
	validBefore := req.ValidBefore
	if limit := now.Add(maxTargetCertLifetime); validBefore.After(limit) {
		validBefore = limit
	}
	ext := map[string]string{"permit-pty": ""}
	for k, v := range req.Extensions {
		ext[k] = v
	}
	crit := map[string]string{}
	if len(req.SourceAddresses) > 0 {
		crit["source-address"] = strings.Join(req.SourceAddresses, ",")
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
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if spec.Serial, err = ca.NewSerial(s.cfg.Rand); err != nil {
			return nil, fmt.Errorf("draw serial: %w", err)
		}
		if err = spec.Validate(); err != nil {
			return nil, &Error{Kind: KindInvalid, Code: CodeInvalidRequest, Message: err.Error()}
		}
		row := audit.Certificate{
			Serial: spec.Serial, Kind: "target", RequestID: req.RequestID, SessionID: req.SessionID,
			User: req.User, Host: req.Host, Login: req.Login, Principals: spec.Principals,
			KeyFingerprint: ssh.FingerprintSHA256(req.Key), KeyID: spec.KeyID,
			ValidAfter: spec.ValidAfter, ValidBefore: spec.ValidBefore, IssuedAt: now,
		}
		err = s.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
			if err := tx.InsertCertificate(row); err != nil {
				return err
			}
			_, err := tx.Append(audit.Event{
				Time: now, Type: "target_cert.issued", Code: "session", Actor: "bastion", User: req.User,
				Host: req.Host, Login: req.Login, RequestID: req.RequestID, SessionID: req.SessionID, Serial: spec.Serial,
				Data: map[string]string{"key_id": spec.KeyID, "valid_before": spec.ValidBefore.Format(time.RFC3339)},
			})
			return err
		})
		if !errors.Is(err, audit.ErrConflict) {
			break
		}
	}
	if err != nil {
		return nil, unavailable(err)
	}
	cert, err := ca.SignUserCert(s.cfg.Keys.Target, spec)
	if err != nil {
		return nil, &Error{Kind: KindUnavailable, Code: CodeSigningFailed, Message: "target certificate signing failed", Err: err}
	}
	return cert, nil
}

package grant

import (
	"context"
	"errors"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// States of an engineer's certificate as the daemon sees it.
const (
	CertValid       = "valid"
	CertRevoked     = "revoked"
	CertExpired     = "expired"
	CertNotYetValid = "not_yet_valid"
)

// SessionEndClosed is the end reason of a session that ended by itself;
// any other end reason means the bastion cut it (the certificate expired
// or was revoked, the bastion shut down, the recording failed).
const SessionEndClosed = "closed"

// maxStatusSessions bounds the sessions a certificate's status lists.
const maxStatusSessions = 50

// CertStatus is what the daemon knows of one engineer's certificate: its
// record, its state now and its latest sessions.
type CertStatus struct {
	Certificate audit.Certificate
	State       string // CertValid, CertRevoked, CertExpired or CertNotYetValid
	Sessions    []audit.Session
}

// GrantStatus returns the status of the user certificate serial. The
// certificate's owner, admins and auditors may read it; to anyone else,
// as for a serial the CA never issued to a user, it is KindNotFound
// (CodeCertificateUnknown): serials of other users are not confirmed.
func (s *Service) GrantStatus(ctx context.Context, caller Caller, serial uint64) (CertStatus, error) {
	c, err := s.cfg.Store.Certificate(ctx, serial)
	unknown := newError(KindNotFound, CodeCertificateUnknown, "certificate serial %d was not issued to %s by this CA", serial, caller.User)
	switch {
	case errors.Is(err, audit.ErrNotFound):
		return CertStatus{}, unknown
	case err != nil:
		return CertStatus{}, unavailable(err)
	case c.Kind != "user":
		return CertStatus{}, unknown
	}
	pol := s.cfg.Policy()
	if c.User != caller.User && !pol.IsAdmin(caller.User) && !pol.IsAuditor(caller.User) {
		return CertStatus{}, unknown
	}
	sessions, err := s.cfg.Store.SessionsOfSerial(ctx, serial, maxStatusSessions)
	if err != nil {
		return CertStatus{}, unavailable(err)
	}
	return CertStatus{Certificate: c, State: certState(c, s.cfg.Clock()), Sessions: sessions}, nil
}

func certState(c audit.Certificate, now time.Time) string {
	switch {
	case !c.RevokedAt.IsZero():
		return CertRevoked
	case !now.Before(c.ValidBefore):
		return CertExpired
	case now.Before(c.ValidAfter):
		return CertNotYetValid
	}
	return CertValid
}

package grant

import (
	"context"
	"errors"

	"github.com/jitssh/jitssh/audit"
)

// Revoke revokes the certificate with serial and records cert.revoked with
// the reason in the same transaction; the bastion refuses the certificate
// from then on and the KRL lists it. A reason is required (KindInvalid); an
// unknown serial is KindNotFound.
func (a *Admin) Revoke(ctx context.Context, caller Caller, serial uint64, reason string) error {
	if reason == "" {
		return newError(KindInvalid, CodeReasonMissing, "reason is required to revoke a certificate")
	}
	now := a.now()
	err := a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.RevokeCertificate(serial, now, reason); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "cert.revoked", Code: "ok", Actor: caller.User, Serial: serial,
			ClientAddr: caller.ClientAddr, Message: audit.BoundText(reason, maxAuditText)})
		return err
	})
	if errors.Is(err, audit.ErrNotFound) {
		return newError(KindNotFound, CodeNotFound, "no certificate with serial %d", serial)
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

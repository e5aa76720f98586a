package grant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// Revoke revokes the certificate with serial and records cert.revoked with
// the reason in the same transaction; the bastion refuses the certificate
// from then on and the KRL lists it. Revoking a user certificate revokes
// too, in the same transaction and each with its own cert.revoked event,
// the unexpired target certificates the bastion was issued for its
// sessions, so that targets that install the KRL refuse them as well. A
// reason is required (KindInvalid); an unknown serial is KindNotFound.
func (a *Admin) Revoke(ctx context.Context, caller Caller, serial uint64, reason string) error {
	if reason == "" {
		return newError(KindInvalid, CodeReasonMissing, "reason is required to revoke a certificate")
	}
	now := a.now()
	err := a.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		return revokeTx(tx, caller, serial, reason, "ok", now)
	})
	if errors.Is(err, audit.ErrNotFound) {
		return newError(KindNotFound, CodeNotFound, "no certificate with serial %d", serial)
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// revokeTx revokes serial in tx for reason and records cert.revoked with
// code, then revokes the unexpired target certificates minted for its
// sessions (a user certificate's), each with its own cert.revoked event:
// the machinery of Revoke, shared with the removal of a host.
func revokeTx(tx *audit.Tx, caller Caller, serial uint64, reason, code string, now time.Time) error {
	if err := tx.RevokeCertificate(serial, now, reason); err != nil {
		return err
	}
	msg := audit.BoundText(reason, maxAuditText)
	if _, err := tx.Append(audit.Event{Time: now, Type: "cert.revoked", Code: code, Actor: caller.User, Serial: serial,
		ClientAddr: caller.ClientAddr, Message: msg}); err != nil {
		return err
	}
	targets, err := tx.LiveTargetSerials(serial, now)
	if err != nil {
		return err
	}
	for _, ts := range targets {
		why := fmt.Sprintf("user certificate %d revoked", serial)
		if err := tx.RevokeCertificate(ts, now, why); err != nil {
			return err
		}
		if _, err := tx.Append(audit.Event{Time: now, Type: "cert.revoked", Code: "user_revoked", Actor: caller.User, Serial: ts,
			ClientAddr: caller.ClientAddr, Message: why, Data: map[string]string{"kind": "target", "user_serial": fmt.Sprint(serial)}}); err != nil {
			return err
		}
	}
	return nil
}

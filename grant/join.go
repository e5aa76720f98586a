package grant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/issuance"
	"github.com/jitssh/jitssh/policy"
	"github.com/jitssh/jitssh/sshkey"
)

// Join enrols the host a join token is bound to with hostKey (an
// authorized_keys line): it issues a host certificate through the issuance
// door (event code "join"), and in the transaction that records it spends
// the token, writes the host row and records host.joined. The token is
// single use: of two joins racing with one token exactly one succeeds. An
// unknown, used or expired token is KindUnauthenticated with
// CodeJoinTokenInvalid (the message says which); a host already enrolled
// with another key is KindConflict with CodeHostKeyChanged (the same key
// may join again with a fresh token). Each refusal is recorded as
// host.join_failed.
func (h *Hosts) Join(ctx context.Context, clientAddr, token, hostKey string) (Enrolled, error) {
	out, host, err := h.join(ctx, clientAddr, token, hostKey)
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && ge.Kind != KindUnavailable && ge.Kind != KindInternal {
			rerr := appendEvent(ctx, h.store(), h.now(), audit.Event{Type: EventHostJoinFailed, Code: ge.Code, Host: host, ClientAddr: clientAddr,
				Message: audit.BoundText(ge.Message, 4*maxAuditText)})
			withRecordFailure(ge, rerr)
		}
		return Enrolled{}, err
	}
	h.refresh(ctx)
	return out, nil
}

// join returns, beside the outcome, the host the token names once it is
// read (for the refusal's record), else "".
func (h *Hosts) join(ctx context.Context, clientAddr, token, hostKey string) (Enrolled, string, error) {
	key, err := sshkey.ParseAuthorized(hostKey)
	if err != nil {
		return Enrolled{}, "", &Error{Kind: KindInvalid, Code: CodeInvalidPublicKey, Message: "host_key: " + err.Error()}
	}
	hash := hashJoinToken(token)
	now := h.now()
	// The token names the host, so it is read first for the spec, and read
	// again in the transaction that spends it.
	var tok audit.JoinToken
	if err := h.store().Do(ctx, func(tx *audit.Tx) error {
		var err error
		tok, err = spendable(tx, hash, now)
		return err
	}); err != nil {
		return Enrolled{}, tok.Host, domainOrUnavailable(err)
	}
	spec := issuance.HostSpec(key, hostPrincipals(tok.Host, tok.Address), HostCertLifetime, now)
	row := audit.Host{Name: tok.Host, Address: tok.Address, HostKey: keyLine(key), Labels: tok.Labels,
		EnrolledAt: now, EnrolledBy: tok.CreatedBy, CertExpiresAt: spec.ValidBefore.Truncate(time.Second), LastSeen: now}
	cert, err := h.svc.iss.Host(ctx, spec, issuance.Record{
		Certificate: audit.Certificate{Host: tok.Host, ClientAddr: clientAddr, IssuedAt: now},
		Event:       audit.Event{Code: "join", Actor: "host:" + tok.Host, Host: tok.Host, ClientAddr: clientAddr},
		Pre: func(tx *audit.Tx, serial uint64) error {
			again, err := spendable(tx, hash, now)
			if err != nil {
				return err
			}
			if again.Host != tok.Host || again.Address != tok.Address {
				return newError(KindConflict, CodeJoinTokenInvalid, "join token changed while in use; ask for a new one")
			}
			enrolledAt, err := keyUnchanged(tx, tok.Host, key)
			if err != nil {
				return err
			}
			if !enrolledAt.IsZero() {
				row.EnrolledAt = enrolledAt
			}
			if err := tx.UseJoinToken(hash, now); err != nil {
				return err
			}
			row.CertSerial = serial
			if err := tx.PutHost(row); err != nil {
				return err
			}
			_, err = tx.Append(audit.Event{Time: now, Type: EventHostJoined, Code: "ok", Actor: "host:" + tok.Host, Host: tok.Host,
				Serial: serial, ClientAddr: clientAddr, Data: map[string]string{"address": tok.Address, "labels": labelText(tok.Labels),
					"key_fingerprint": ssh.FingerprintSHA256(key), "token_created_by": tok.CreatedBy}})
			return err
		},
	})
	if err != nil {
		return Enrolled{}, tok.Host, issuanceError(err)
	}
	return h.enrolled(row, cert), tok.Host, nil
}

// spendable returns the join token with hash if it can be spent at now, or
// the CodeJoinTokenInvalid refusal that says why not.
func spendable(tx *audit.Tx, hash string, now time.Time) (audit.JoinToken, error) {
	tok, err := tx.JoinToken(hash)
	switch {
	case errors.Is(err, audit.ErrNotFound):
		return tok, newError(KindUnauthenticated, CodeJoinTokenInvalid, "join token unknown: ask an admin for one (jit admin host token)")
	case err != nil:
		return tok, err
	case !tok.UsedAt.IsZero():
		return tok, newError(KindUnauthenticated, CodeJoinTokenInvalid, "join token for host %q was already used at %s; ask an admin for a new one",
			tok.Host, tok.UsedAt.Format(time.RFC3339))
	case !now.Before(tok.ExpiresAt):
		return tok, newError(KindUnauthenticated, CodeJoinTokenInvalid, "join token for host %q expired at %s; ask an admin for a new one",
			tok.Host, tok.ExpiresAt.Format(time.RFC3339))
	}
	return tok, nil
}

// keyUnchanged refuses a host enrolled (and not removed) with another key;
// for one enrolled with this key (a re-join) it returns when it was first
// enrolled, else the zero time.
func keyUnchanged(tx *audit.Tx, name string, key ssh.PublicKey) (time.Time, error) {
	have, err := tx.Host(name)
	if errors.Is(err, audit.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	if !have.RemovedAt.IsZero() {
		return time.Time{}, nil
	}
	if have.HostKey != "" && !sameKey(have.HostKey, key) {
		return time.Time{}, newError(KindConflict, CodeHostKeyChanged, "host %q is enrolled with host key %s, not %s; remove it first (jit admin host remove %s) to enrol a new key",
			name, fingerprintOf(have.HostKey), ssh.FingerprintSHA256(key), name)
	}
	return have.EnrolledAt, nil
}

func fingerprintOf(line string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "(unreadable)"
	}
	return ssh.FingerprintSHA256(k)
}

// issuanceError turns what the door returned into a domain error: the
// caller's own refusal from Pre, or the audit store's failure.
func issuanceError(err error) error {
	var ge *Error
	switch {
	case errors.As(err, &ge):
		return ge
	case errors.Is(err, issuance.ErrInvalid):
		return &Error{Kind: KindInvalid, Code: CodeInvalidRequest, Message: err.Error(), Err: err}
	case errors.Is(err, issuance.ErrSigning):
		return &Error{Kind: KindInternal, Code: CodeSigningFailed, Message: "host certificate signing failed", Err: err}
	}
	return unavailable(err)
}

// refresh merges the store's hosts into the policy in force.
// refresh puts the committed inventory into the policy in force at once.
// It is best effort: the join or removal is committed whatever it says (an
// unparsable enrolled key elsewhere in the store must not turn a spent token
// and an issued certificate into an error), and the daemon's housekeeping
// refreshes, and logs what fails, every few seconds anyway.
func (h *Hosts) refresh(ctx context.Context) {
	_ = h.cfg.Reloader.RefreshUsers(ctx)
}

// RenewChallenge starts a renewal of host name's certificate: it returns a
// nonce for the host to sign with its host key, valid once for two
// minutes, asked for from clientAddr. Only an enrolled host is given one
// (at most RenewalsPerHost live, the oldest replaced): a name that is not
// a valid host name is KindInvalid, one not enrolled KindNotFound and a
// removed host KindGone, the last two recorded as host.renew_failed, as
// Renew records them; too many unanswered challenges, of the address or
// in total, is KindUnavailable with CodeBusy.
func (h *Hosts) RenewChallenge(ctx context.Context, clientAddr, name string) (nonce string, expires time.Time, err error) {
	if err := policy.ValidName("host", name); err != nil {
		return "", time.Time{}, &Error{Kind: KindInvalid, Code: string(policy.ReasonInvalidHost), Message: err.Error()}
	}
	row, err := h.store().Host(ctx, name)
	var refusal *Error
	switch {
	case errors.Is(err, audit.ErrNotFound):
		refusal = newError(KindNotFound, CodeHostNotEnrolled, "host %q is not enrolled", name)
	case err != nil:
		return "", time.Time{}, unavailable(err)
	case !row.RemovedAt.IsZero():
		refusal = removedError(row)
	}
	if refusal != nil {
		rerr := appendEvent(ctx, h.store(), h.now(), audit.Event{Type: EventHostRenewFailed, Code: refusal.Code, Host: audit.BoundText(name, maxNameText),
			ClientAddr: clientAddr, Message: audit.BoundText(refusal.Message, 4*maxAuditText)})
		return "", time.Time{}, withRecordFailure(refusal, rerr)
	}
	return h.challenges.issue(ctx, h.svc.cfg.Rand, name, clientAddr, h.now())
}

// Renew issues host name a new certificate once it proves its enrolled
// host key: signature is base64 of an SSH signature over Message(name,
// nonce). The nonce is spent whatever the outcome. A bad, replayed or
// expired nonce is KindUnauthenticated with CodeBadChallenge, a signature
// that does not verify with the enrolled key CodeBadSignature, an unknown
// host KindNotFound and a removed one KindGone with CodeHostRemoved; each
// refusal is recorded as host.renew_failed. A renewal records
// host_cert.renewed with the door's host_cert.issued (code "renew").
func (h *Hosts) Renew(ctx context.Context, clientAddr, name, nonce, signature string) (Enrolled, error) {
	out, err := h.renew(ctx, clientAddr, name, nonce, signature)
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && ge.Kind != KindUnavailable && ge.Kind != KindInternal {
			rerr := appendEvent(ctx, h.store(), h.now(), audit.Event{Type: EventHostRenewFailed, Code: ge.Code, Host: audit.BoundText(name, maxNameText),
				ClientAddr: clientAddr, Message: audit.BoundText(ge.Message, 4*maxAuditText)})
			withRecordFailure(ge, rerr)
		}
		return Enrolled{}, err
	}
	return out, nil
}

func (h *Hosts) renew(ctx context.Context, clientAddr, name, nonce, signature string) (Enrolled, error) {
	now := h.now()
	if ok, err := h.challenges.spend(ctx, nonce, name, now); err != nil {
		return Enrolled{}, err
	} else if !ok {
		return Enrolled{}, newError(KindUnauthenticated, CodeBadChallenge, "renewal challenge unknown, expired, used or for another host; start again")
	}
	row, err := h.store().Host(ctx, name)
	if errors.Is(err, audit.ErrNotFound) {
		return Enrolled{}, newError(KindNotFound, CodeHostNotEnrolled, "host %q is not enrolled", name)
	}
	if err != nil {
		return Enrolled{}, unavailable(err)
	}
	if !row.RemovedAt.IsZero() {
		return Enrolled{}, removedError(row)
	}
	key, err := sshkey.ParseAuthorized(row.HostKey)
	if err != nil {
		return Enrolled{}, &Error{Kind: KindInternal, Code: CodeInternal, Message: fmt.Sprintf("enrolled host key of %q: %v", name, err), Err: err}
	}
	sig, err := parseSignature(signature)
	if err != nil {
		return Enrolled{}, &Error{Kind: KindInvalid, Code: CodeBadSignature, Message: err.Error()}
	}
	if err := key.Verify(h.cfg.Message(name, nonce), sig); err != nil {
		return Enrolled{}, newError(KindUnauthenticated, CodeBadSignature, "signature does not verify with the enrolled host key %s of %q", ssh.FingerprintSHA256(key), name)
	}
	return h.reissue(ctx, clientAddr, row, key, now)
}

// reissue issues row's host a new certificate for key and writes the row
// with it, in the door's transaction, unless the host was removed or its
// key changed in the meantime.
func (h *Hosts) reissue(ctx context.Context, clientAddr string, row audit.Host, key ssh.PublicKey, now time.Time) (Enrolled, error) {
	spec := issuance.HostSpec(key, hostPrincipals(row.Name, row.Address), HostCertLifetime, now)
	cert, err := h.svc.iss.Host(ctx, spec, issuance.Record{
		Certificate: audit.Certificate{Host: row.Name, ClientAddr: clientAddr, IssuedAt: now},
		Event:       audit.Event{Code: "renew", Actor: "host:" + row.Name, Host: row.Name, ClientAddr: clientAddr},
		Pre: func(tx *audit.Tx, serial uint64) error {
			cur, err := tx.Host(row.Name)
			if err != nil {
				return err
			}
			if !cur.RemovedAt.IsZero() {
				return removedError(cur)
			}
			if !sameKey(cur.HostKey, key) {
				return newError(KindConflict, CodeHostKeyChanged, "host %q changed its enrolled key during the renewal", row.Name)
			}
			prev := cur.CertSerial
			cur.CertSerial, cur.CertExpiresAt, cur.LastSeen = serial, spec.ValidBefore.Truncate(time.Second), now
			row = cur
			if err := tx.PutHost(cur); err != nil {
				return err
			}
			_, err = tx.Append(audit.Event{Time: now, Type: EventHostCertRenewed, Code: "ok", Actor: "host:" + row.Name, Host: row.Name,
				Serial: serial, ClientAddr: clientAddr, Data: map[string]string{"previous_serial": fmt.Sprint(prev),
					"valid_before": cur.CertExpiresAt.Format(time.RFC3339)}})
			return err
		},
	})
	if err != nil {
		return Enrolled{}, issuanceError(err)
	}
	return h.enrolled(row, cert), nil
}

func removedError(row audit.Host) *Error {
	return newError(KindGone, CodeHostRemoved, "host %q was removed at %s; an admin may make a new join token for it",
		row.Name, row.RemovedAt.Format(time.RFC3339))
}

// Remove removes the enrolled host name: in one transaction it revokes the
// host's unexpired host certificates and every unexpired user certificate
// for the host (with their sessions' target certificates, as Revoke does,
// so that the bastion ends its live sessions within seconds), marks the
// host removed and records host.removed. A reason is required
// (KindInvalid); an unknown host is KindNotFound and one already removed
// KindGone.
func (h *Hosts) Remove(ctx context.Context, caller Caller, name, reason string) error {
	if reason == "" {
		return newError(KindInvalid, CodeReasonMissing, "reason is required to remove a host")
	}
	now := h.now()
	err := h.store().Do(ctx, func(tx *audit.Tx) error {
		row, err := tx.Host(name)
		if errors.Is(err, audit.ErrNotFound) {
			return newError(KindNotFound, CodeHostNotEnrolled, "host %q is not enrolled", name)
		}
		if err != nil {
			return err
		}
		if !row.RemovedAt.IsZero() {
			return removedError(row)
		}
		why := fmt.Sprintf("host %s removed: %s", name, audit.BoundText(reason, maxAuditText))
		var revoked int
		for _, kind := range []string{"host", "user"} {
			serials, err := tx.LiveHostSerials(name, kind, now)
			if err != nil {
				return err
			}
			for _, serial := range serials {
				if err := revokeTx(tx, caller, serial, why, "host_removed", now); err != nil {
					return err
				}
			}
			revoked += len(serials)
		}
		row.RemovedAt = now
		if err := tx.PutHost(row); err != nil {
			return err
		}
		_, err = tx.Append(audit.Event{Time: now, Type: EventHostRemoved, Code: "ok", Actor: caller.User, Host: name, Serial: row.CertSerial,
			ClientAddr: caller.ClientAddr, Message: audit.BoundText(reason, maxAuditText), Data: map[string]string{"revoked": fmt.Sprint(revoked)}})
		return err
	})
	if err != nil {
		return domainOrUnavailable(err)
	}
	h.refresh(ctx)
	return nil
}

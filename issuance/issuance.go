// Package issuance is the one door to the CA. Every certificate jitssh
// signs (engineers' user certificates, the bastion's per-session target
// certificates, host certificates of targets and of the bastion) goes
// through an Issuer, which records it, then signs it, then checks it.
//
// The record is the certificate row and its chained event, committed in one
// audit transaction together with whatever the caller's Pre step writes
// (a request's new state, say). Only a committed record is signed, so the
// audit store holds every certificate that ever left the CA. If signing
// fails after that, the failure is recorded too and the serial revoked: the
// trail stays honest and the serial can never become valid.
//
// Package ca stays the pure signer; a test of this package walks the module
// and fails if any other package calls ca's signing functions.
package issuance

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
)

// Kinds of certificate, as the certificate row stores them.
const (
	KindUser   = "user"
	KindTarget = "target"
	KindHost   = "host"
)

// Event types the Issuer records, by kind. Audit consumers (metrics, jit
// audit, webhooks' readers) rely on the issued ones.
const (
	EventUserIssued   = "cert.issued"
	EventUserFailed   = "cert.failed"
	EventTargetIssued = "target_cert.issued"
	EventTargetFailed = "target_cert.failed"
	EventHostIssued   = "host_cert.issued"
	EventHostFailed   = "host_cert.failed"
)

// CodeSigningFailed is the Code of a signing failure's event.
const CodeSigningFailed = "signing_failed"

// hostBackdate is how far HostSpec backdates ValidAfter for clock skew.
const hostBackdate = time.Minute

// maxAttempts bounds the serials drawn for one certificate: a collision of
// 63-bit random serials is rare, three in a row means something else.
const maxAttempts = 3

// The stages an issuance can fail at; test with errors.Is. An error of
// ErrRecord also matches whatever the store or the caller's Pre returned
// (audit.ErrConflict, the caller's own error types).
var (
	// ErrInvalid means the spec was refused before anything was recorded.
	ErrInvalid = errors.New("invalid certificate spec")
	// ErrRecord means the record was not committed, so nothing was signed.
	ErrRecord = errors.New("certificate not recorded")
	// ErrSigning means the record was committed but the CA could not sign
	// (or the result did not verify); the failure is recorded and the
	// serial revoked.
	ErrSigning = errors.New("certificate signing failed")
)

// stageError is an error of one stage: it reads as err and matches both the
// stage's sentinel and everything err wraps.
type stageError struct{ stage, err error }

func (e *stageError) Error() string   { return e.err.Error() }
func (e *stageError) Unwrap() []error { return []error{e.stage, e.err} }

// Config holds what an Issuer needs. Store and Keys are required.
type Config struct {
	Store *audit.Store
	// Keys are the CA keys. Each is needed only for its kind: User signs
	// user certificates, Target target certificates, Host host
	// certificates; asking for a kind whose key is nil is an error before
	// anything is recorded.
	Keys *ca.Keys
	// Rand is the source of serials; nil means crypto/rand.
	Rand io.Reader
	// Clock gives the time of records the caller does not date (a signing
	// failure); nil means time.Now.
	Clock func() time.Time
}

// Issuer records, then signs, then checks certificates. It is safe for
// concurrent use.
type Issuer struct {
	cfg Config
}

// New returns an Issuer, or an error naming the missing configuration.
func New(cfg Config) (*Issuer, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("issuance: config: Store is required")
	case cfg.Keys == nil:
		return nil, errors.New("issuance: config: Keys are required")
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Issuer{cfg: cfg}, nil
}

// Record is what the caller knows of a certificate beyond its spec.
type Record struct {
	// Certificate carries the row's RequestID, SessionID, User, Host,
	// Login, ClientAddr and IssuedAt (zero: the Issuer's clock). Serial,
	// Kind, Principals, KeyFingerprint, KeyID, ValidAfter, ValidBefore,
	// Extensions and CriticalOptions are set from the spec, overwriting
	// whatever is there, so that the row is always what is signed.
	Certificate audit.Certificate
	// Event is the issuance event: the caller sets Code, Actor, User, Host,
	// Login, RequestID, SessionID, ClientAddr, Message and Data of its own;
	// a zero Time means IssuedAt. Type and Serial are set by the Issuer,
	// which also adds to Data what is signed: principals, key_id,
	// key_fingerprint, valid_after and valid_before.
	Event audit.Event
	// Pre, when set, runs first in the same transaction, with the serial
	// drawn. Its error aborts the issuance and comes back wrapped in
	// ErrRecord; audit.ErrConflict (from Pre or a serial collision) makes
	// the Issuer try again with a fresh serial, up to three times.
	Pre func(tx *audit.Tx, serial uint64) error
}

// User records a user certificate for spec (whose Serial is drawn here,
// whatever it holds), then signs it with the user CA. The event is
// cert.issued.
func (i *Issuer) User(ctx context.Context, spec ca.UserCertSpec, rec Record) (*ssh.Certificate, error) {
	return i.issue(ctx, rec, userOrder(KindUser, i.cfg.Keys.User, spec))
}

// Target records a per-session target certificate for spec (whose Serial is
// drawn here), then signs it with the target CA. The event is
// target_cert.issued.
func (i *Issuer) Target(ctx context.Context, spec ca.UserCertSpec, rec Record) (*ssh.Certificate, error) {
	return i.issue(ctx, rec, userOrder(KindTarget, i.cfg.Keys.Target, spec))
}

// Host records a host certificate for spec (whose Serial is drawn here),
// then signs it with the host CA. The event is host_cert.issued.
func (i *Issuer) Host(ctx context.Context, spec ca.HostCertSpec, rec Record) (*ssh.Certificate, error) {
	return i.issue(ctx, rec, order{
		kind: KindHost, issued: EventHostIssued, failed: EventHostFailed, ca: i.cfg.Keys.Host,
		prepare: func(serial uint64) (signed, error) {
			spec.Serial = serial
			return signed{key: spec.Key, keyID: spec.KeyID, principals: spec.Principals,
				after: spec.ValidAfter, before: spec.ValidBefore}, spec.Validate()
		},
		sign: func(key ssh.Signer) (*ssh.Certificate, error) { return ca.SignHostCert(key, spec) },
	})
}

// HostSpec returns the spec of a host certificate for key as jitssh issues
// them: principals as given, key id "host:" and the principals joined by
// commas, valid from a minute before now (for clock skew) until now plus
// validFor. The serial is left for the Issuer to draw.
func HostSpec(key ssh.PublicKey, principals []string, validFor time.Duration, now time.Time) ca.HostCertSpec {
	return ca.HostCertSpec{
		Key: key, KeyID: "host:" + strings.Join(principals, ","), Principals: principals,
		ValidAfter: now.Add(-hostBackdate), ValidBefore: now.Add(validFor),
	}
}

func userOrder(kind string, key ssh.Signer, spec ca.UserCertSpec) order {
	o := order{kind: kind, issued: EventUserIssued, failed: EventUserFailed, ca: key}
	if kind == KindTarget {
		o.issued, o.failed = EventTargetIssued, EventTargetFailed
	}
	o.prepare = func(serial uint64) (signed, error) {
		spec.Serial = serial
		return signed{key: spec.Key, keyID: spec.KeyID, principals: spec.Principals,
			after: spec.ValidAfter, before: spec.ValidBefore,
			ext: spec.Extensions, crit: spec.CriticalOptions}, spec.Validate()
	}
	o.sign = func(key ssh.Signer) (*ssh.Certificate, error) { return ca.SignUserCert(key, spec) }
	return o
}

// order is one certificate to issue: its kind, its events, the CA key that
// signs it, and its spec behind two functions so that user and host specs
// share one path.
type order struct {
	kind, issued, failed string
	ca                   ssh.Signer
	// prepare puts serial into the spec, validates it and returns what
	// will be signed.
	prepare func(serial uint64) (signed, error)
	// sign signs the prepared spec with key.
	sign func(key ssh.Signer) (*ssh.Certificate, error)
}

// signed is what a spec puts into a certificate, as the record keeps it.
type signed struct {
	key           ssh.PublicKey
	keyID         string
	principals    []string
	after, before time.Time
	ext, crit     map[string]string
}

func (i *Issuer) issue(ctx context.Context, rec Record, o order) (*ssh.Certificate, error) {
	if o.ca == nil {
		return nil, fmt.Errorf("issue %s certificate: no %s CA key configured", o.kind, o.kind)
	}
	row, ev, err := i.record(ctx, rec, o)
	if err != nil {
		return nil, err
	}
	cert, err := o.sign(o.ca)
	if err != nil {
		return nil, i.recordFailure(ctx, o, row.Serial, ev, err)
	}
	return cert, nil
}

// record draws a serial and commits the row, the event and rec.Pre's writes
// in one transaction, drawing again on a conflict.
func (i *Issuer) record(ctx context.Context, rec Record, o order) (audit.Certificate, audit.Event, error) {
	var (
		row audit.Certificate
		ev  audit.Event
		err error
	)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var serial uint64
		if serial, err = ca.NewSerial(i.cfg.Rand); err != nil {
			return row, ev, fmt.Errorf("issue %s certificate: draw serial: %w", o.kind, err)
		}
		s, verr := o.prepare(serial)
		if verr != nil {
			return row, ev, &stageError{ErrInvalid, verr}
		}
		row, ev = i.describe(rec, o, serial, s)
		err = i.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
			if rec.Pre != nil {
				if err := rec.Pre(tx, serial); err != nil {
					return err
				}
			}
			if err := tx.InsertCertificate(row); err != nil {
				return err
			}
			_, err := tx.Append(ev)
			return err
		})
		if !errors.Is(err, audit.ErrConflict) {
			break
		}
	}
	if err != nil {
		return row, ev, &stageError{ErrRecord, fmt.Errorf("record %s certificate: %w", o.kind, err)}
	}
	return row, ev, nil
}

// describe fills the caller's row and event with what is signed.
func (i *Issuer) describe(rec Record, o order, serial uint64, s signed) (audit.Certificate, audit.Event) {
	row := rec.Certificate
	row.Serial, row.Kind = serial, o.kind
	row.Principals = append([]string(nil), s.principals...)
	row.KeyFingerprint, row.KeyID = ssh.FingerprintSHA256(s.key), s.keyID
	// A certificate holds whole seconds; so does its row, so that the row
	// is exactly what was signed.
	row.ValidAfter, row.ValidBefore = s.after.Truncate(time.Second), s.before.Truncate(time.Second)
	row.Extensions, row.CriticalOptions = maps.Clone(s.ext), maps.Clone(s.crit)
	if row.IssuedAt.IsZero() {
		row.IssuedAt = i.cfg.Clock().UTC()
	}
	ev := rec.Event
	ev.Type, ev.Serial = o.issued, serial
	if ev.Time.IsZero() {
		ev.Time = row.IssuedAt
	}
	ev.Data = maps.Clone(rec.Event.Data)
	if ev.Data == nil {
		ev.Data = map[string]string{}
	}
	ev.Data["principals"] = strings.Join(row.Principals, ",")
	ev.Data["key_id"] = row.KeyID
	ev.Data["key_fingerprint"] = row.KeyFingerprint
	ev.Data["valid_after"] = row.ValidAfter.UTC().Format(time.RFC3339)
	ev.Data["valid_before"] = row.ValidBefore.UTC().Format(time.RFC3339)
	return row, ev
}

// recordFailure records that the recorded certificate serial was not
// signed, revokes the serial and returns the signing error, joined with the
// error of recording it if that failed too. It records even when ctx is
// done: the record already says a certificate was issued.
func (i *Issuer) recordFailure(ctx context.Context, o order, serial uint64, issued audit.Event, signErr error) error {
	now := i.cfg.Clock().UTC()
	e := issued
	e.Type, e.Code, e.Message, e.Time, e.Data = o.failed, CodeSigningFailed, signErr.Error(), now, nil
	err := i.cfg.Store.Do(context.WithoutCancel(ctx), func(tx *audit.Tx) error {
		if _, err := tx.Append(e); err != nil {
			return err
		}
		return tx.RevokeCertificate(serial, now, "signing failed")
	})
	out := &stageError{ErrSigning, fmt.Errorf("sign %s certificate serial %d: %w", o.kind, serial, signErr)}
	if err != nil {
		return errors.Join(out, fmt.Errorf("record the signing failure of serial %d: %w", serial, err))
	}
	return out
}

package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/issuance"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/provision"
	"github.com/jitssh/jitssh/recstore"
	"github.com/jitssh/jitssh/sessionlog"
)

func startBastion(ctx context.Context, cfg Config, l Layout, keys *ca.Keys, backend *bastionBackend, store *audit.Store, ps *livepolicy.Holder, gate *proxyGate, wg *sync.WaitGroup) (string, *bastionIdentity, error) {
	if err := checkBastionAddrs(cfg.BastionAddr, cfg.PublicAddrs); err != nil {
		return "", nil, err
	}
	// Like every key, the bastion's is made by jitd init only: serve never
	// makes a key, so a missing one is an error, not a silent new identity.
	hostKey, err := ca.LoadSigner(l.BastionHostKey())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("bastion host key %s is missing (run jitd init, or jitd serve --init): %w", l.BastionHostKey(), err)
	}
	if err != nil {
		return "", nil, fmt.Errorf("bastion host key: %w", err)
	}
	iss, err := issuance.New(issuance.Config{Store: store, Keys: keys, Clock: cfg.Clock})
	if err != nil {
		return "", nil, err
	}
	id := &bastionIdentity{iss: iss, key: hostKey, principals: bastionPrincipals(cfg.BastionAddr, cfg.PublicAddrs),
		lifetime: cmp.Or(cfg.BastionCertLifetime, DefaultBastionCertLifetime), clock: cfg.Clock, log: cfg.Logger.With("component", "bastion")}
	hostSigner, err := id.certify(ctx, eventBastion)
	if err != nil {
		return "", nil, err
	}
	srv, err := bastion.New(bastion.Config{
		HostSigner:      hostSigner,
		UserCAs:         []ssh.PublicKey{keys.User.PublicKey()},
		HostCA:          keys.Host.PublicKey(),
		Resolve:         resolver(ps),
		Backend:         backend,
		RecordingDir:    l.Recordings(),
		OpenRecording:   backend.openRecording,
		Clock:           cfg.Clock,
		EgressAddresses: cfg.EgressAddresses,
		Logger:          cfg.Logger.With("component", "bastion"),

		AuthTimeout:               cfg.Limits.BastionAuthTimeout,
		MaxUnauthenticated:        cfg.Limits.BastionMaxUnauth,
		MaxUnauthenticatedPerAddr: cfg.Limits.BastionMaxUnauthPerAddr,
	})
	if err != nil {
		return "", nil, err
	}
	id.srv = srv
	ln, err := net.Listen("tcp", cfg.BastionAddr)
	if err != nil {
		return "", nil, fmt.Errorf("listen for bastion on %s: %w", cfg.BastionAddr, err)
	}
	if ln, err = gate.wrap(ln, "bastion"); err != nil {
		return "", nil, errors.Join(err, ln.Close())
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, bastion.ErrServerClosed) {
			cfg.Logger.Error("bastion stopped", "err", err)
		}
	}()
	return ln.Addr().String(), id, nil
}

func resolver(ps *livepolicy.Holder) func(string) (bastion.Target, bool) {
	return func(name string) (bastion.Target, bool) {
		h, ok := ps.Current().Host(name)
		if !ok {
			return bastion.Target{}, false
		}
		return bastion.Target{Name: h.Name, Address: h.Address, HostKey: h.HostKey}, true
	}
}

// bastionBackend gives the bastion what it needs of the lifecycle and the
// audit store.
type bastionBackend struct {
	grants *grant.Service
	store  *audit.Store
	clock  func() time.Time
	// accounts creates ephemeral accounts (accounts.go).
	accounts *provision.Accounts
	// recs uploads recordings and names them relative to the store.
	recs          *recstore.Store
	openRecording func(string) (io.ReadCloser, error)
	// replica is this replica's ID, written into every session row.
	replica string
}

// CertificateStatus asks grant to check the presented certificate against
// the CA's record of its serial; grant's refusal codes become the audit
// codes of the bastion's session.rejected.
// HostCertificateRevoked looks the serial up in the audit store. A serial
// with no row is not revoked: host certificates that `jitd host certify`
// signed before it recorded them are still valid, and their signature by
// the host CA was checked already.
func (b *bastionBackend) HostCertificateRevoked(ctx context.Context, serial uint64) (bool, error) {
	c, err := b.store.Certificate(ctx, serial)
	if errors.Is(err, audit.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("host certificate %d: %w", serial, err)
	}
	if c.Kind != issuance.KindHost {
		return false, fmt.Errorf("certificate %d is a %s certificate, not a host certificate", serial, c.Kind)
	}
	return !c.RevokedAt.IsZero(), nil
}

// TargetCertificateRevoked reports whether the session's target
// certificate with serial was revoked (with its engineer's certificate, or
// on its own); an unknown serial is not revoked (nothing to cut for).
func (b *bastionBackend) TargetCertificateRevoked(ctx context.Context, serial uint64) (bool, error) {
	c, err := b.store.Certificate(ctx, serial)
	if errors.Is(err, audit.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("target certificate %d: %w", serial, err)
	}
	if c.Kind != issuance.KindTarget {
		return false, fmt.Errorf("certificate %d is a %s certificate, not a target certificate", serial, c.Kind)
	}
	return !c.RevokedAt.IsZero(), nil
}

func (b *bastionBackend) CertificateStatus(ctx context.Context, cert *ssh.Certificate) (bastion.CertStatus, error) {
	uc, err := b.grants.PresentedCertificate(ctx, cert)
	if err != nil {
		var ge *grant.Error
		if errors.As(err, &ge) && ge.Kind != grant.KindUnavailable {
			return bastion.CertStatus{}, &bastion.RefusalError{Code: ge.Code, Err: err}
		}
		return bastion.CertStatus{}, err
	}
	return bastion.CertStatus{RequestID: uc.RequestID, User: uc.User, Revoked: !uc.RevokedAt.IsZero(), RecordInput: uc.RecordInput,
		IdleTimeout: uc.IdleTimeout}, nil
}

// MintTargetCert asks grant for the session's target certificate; what it
// permits is decided there, from the record of the engineer's certificate.
func (b *bastionBackend) MintTargetCert(ctx context.Context, req bastion.TargetCertRequest) (*ssh.Certificate, error) {
	return b.grants.MintTargetCert(ctx, grant.TargetCertRequest{
		RequestID: req.RequestID, SessionID: req.SessionID, User: req.User, Login: req.Login, Host: req.Host,
		UserSerial: req.UserSerial, UserCert: req.UserCert, ValidBefore: req.ValidBefore, SourceAddresses: req.SourceAddresses, Key: req.Key,
	})
}

// SessionStarted records the session with its recording's name relative
// to the recordings store (so a moved data directory or an object store
// still finds it) and, once that is committed, queues the growing
// recording for upload: a session the store refused has its file removed
// by the bastion and must leave no upload behind.
func (b *bastionBackend) SessionStarted(ctx context.Context, s bastion.SessionRecord) error {
	spooled := s.RecordingPath
	s.RecordingPath = b.recs.Name(spooled)
	err := b.store.Do(ctx, func(tx *audit.Tx) error {
		row := toAuditSession(s)
		row.Replica = b.replica
		if err := tx.InsertSession(row); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: b.clock().UTC(), Type: "session.start", Code: "ok", Actor: s.User, User: s.User, Host: s.Host, Login: s.Login,
			RequestID: s.RequestID, SessionID: s.ID, Serial: s.Serial, ClientAddr: s.ClientAddr, Message: s.Command})
		return err
	})
	if err == nil {
		b.recs.Started(spooled)
	}
	return err
}

// SessionEnded records the end and then lets the upload of the complete
// recording finish; the upload checks the stored object against the
// digest recorded here. An end the store did not record keeps the
// recording in the spool: it is never uploaded (and its spool copy
// removed) without a chained digest to check it against.
func (b *bastionBackend) SessionEnded(ctx context.Context, s bastion.SessionRecord) error {
	err := b.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.EndSession(audit.SessionEnd{
			ID: s.ID, EndedAt: s.EndedAt, ExitStatus: s.ExitStatus, BytesIn: s.BytesIn, BytesOut: s.BytesOut,
			RecordingPath: b.recs.Name(s.RecordingPath), RecordingSHA256: s.RecordingSHA256, RecordingSize: s.RecordingSize, EndReason: s.EndReason,
		})
	})
	if err == nil {
		b.recs.Ended(s.RecordingPath, s.RecordingSHA256, s.RecordingSize)
	}
	return err
}

// maxRefusalText bounds the user name and target of a refused SSH login as
// recorded; SSH puts no limit on a user name.
const maxRefusalText = 512

func (b *bastionBackend) SessionRejected(ctx context.Context, code, user, target, clientAddr, reason string) error {
	// The user, target and reason (which quotes them) come from a client
	// that has not authenticated: bounded, so that it cannot make the
	// store keep whatever it sends.
	user, target = audit.BoundText(user, maxRefusalText), audit.BoundText(target, maxRefusalText)
	return b.store.Append(ctx, audit.Event{Time: b.clock().UTC(), Type: "session.rejected", Code: code, Actor: user, User: user,
		Host: target, ClientAddr: clientAddr, Message: audit.BoundText(reason, 4*maxRefusalText)})
}

func (b *bastionBackend) IndexText(ctx context.Context, sessionID string, lines []sessionlog.Line) error {
	out := make([]audit.TextLine, 0, len(lines))
	for _, l := range lines {
		out = append(out, audit.TextLine{SessionID: sessionID, Offset: l.Offset, Kind: l.Kind, Text: l.Text})
	}
	return b.store.Do(ctx, func(tx *audit.Tx) error { return tx.IndexText(out) })
}

func toAuditSession(s bastion.SessionRecord) audit.Session {
	return audit.Session{
		ID: s.ID, RequestID: s.RequestID, User: s.User, Host: s.Host, Login: s.Login, Serial: s.Serial, TargetSerial: s.TargetSerial,
		ClientAddr: s.ClientAddr, Command: s.Command, StartedAt: s.StartedAt, EndedAt: s.EndedAt, ExitStatus: s.ExitStatus,
		BytesIn: s.BytesIn, BytesOut: s.BytesOut, RecordingPath: s.RecordingPath, RecordingSHA256: s.RecordingSHA256,
		RecordingSize: s.RecordingSize, EndReason: s.EndReason,
	}
}

// IndexPending stores lines and the session's catch-up position (or clears
// it, done) in one transaction, so that a restart resumes the catch-up
// exactly where the committed index ends.
func (b *bastionBackend) IndexPending(ctx context.Context, sessionID string, lines []sessionlog.Line, next int64, done bool) error {
	out := make([]audit.TextLine, 0, len(lines))
	for _, l := range lines {
		out = append(out, audit.TextLine{SessionID: sessionID, Offset: l.Offset, Kind: l.Kind, Text: l.Text})
	}
	return b.store.Do(ctx, func(tx *audit.Tx) error {
		if len(out) > 0 {
			if err := tx.IndexText(out); err != nil {
				return err
			}
		}
		if done {
			return tx.ClearIndexPending(sessionID)
		}
		return tx.SetIndexPending(sessionID, next, b.clock())
	})
}

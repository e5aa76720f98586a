package bastion

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

// stateKey is the gliderlabs context key of a connection's *connState.
type stateKey struct{}

// connState is the bastion's view of one client connection: who
// authenticated, the target connection (dialed once, shared by channels),
// its session channels and the expiry timers.
type connState struct {
	srv    *Server
	raw    net.Conn
	remote string

	dialMu sync.Mutex // serialises the one dial; never held with mu while waiting on mu's holders

	mu        sync.Mutex
	closed    bool
	reason    string // why terminate was called
	rejected  map[string]bool
	sessions  map[*session]struct{}
	nsessions int
	connID    string
	dialDone  bool
	target    *ssh.Client
	targetSN  uint64
	targetErr error
	warnT     *time.Timer
	expT      *time.Timer
	revokeT   *time.Timer
	idleT     *time.Timer
	idle      *idleState // nil without an idle timeout (idle.go)
	// authed, authT and releaseUnauth are the pre-authentication bounds
	// (limits.go).
	authed        bool
	authT         *time.Timer
	releaseUnauth func()
}

// trackedConn calls onClose when gliderlabs closes the raw connection.
type trackedConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
	return err
}

func stateOf(ctx gliderssh.Context) *connState {
	st, _ := ctx.Value(stateKey{}).(*connState)
	return st
}

// connCallback registers every accepted connection, so Close can cut
// connections still in the handshake and expiry can close the socket.
func (s *Server) connCallback(ctx gliderssh.Context, c net.Conn) net.Conn {
	st := &connState{
		srv: s, remote: c.RemoteAddr().String(),
		rejected: map[string]bool{}, sessions: map[*session]struct{}{},
	}
	tc := &trackedConn{Conn: c}
	st.raw = tc
	tc.onClose = st.closed0
	release, ok := s.limiter.acquire(c.RemoteAddr())
	if !ok {
		c.Close()
		return nil
	}
	st.releaseUnauth = release
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		release()
		c.Close()
		return nil
	}
	s.conns[st] = struct{}{}
	s.mu.Unlock()
	st.armAuthDeadline(s.cfg.AuthTimeout)
	ctx.SetValue(stateKey{}, st)
	return tc
}

// closed0 runs once when the raw connection is closed.
func (st *connState) closed0() {
	st.mu.Lock()
	st.closed = true
	if st.warnT != nil {
		st.warnT.Stop()
	}
	if st.expT != nil {
		st.expT.Stop()
	}
	if st.revokeT != nil {
		st.revokeT.Stop()
	}
	if st.authT != nil {
		st.authT.Stop()
	}
	if st.idleT != nil {
		st.idleT.Stop()
	}
	release := st.releaseUnauth
	target := st.target
	st.mu.Unlock()
	if release != nil {
		release()
	}
	if target != nil {
		target.Close()
	}
	st.srv.mu.Lock()
	delete(st.srv.conns, st)
	st.srv.mu.Unlock()
	st.srv.serials.drop(st)
}

// firstRejection reports whether this (key, reason) is new for the
// connection, so one client offering one bad key twice is audited once.
func (st *connState) firstRejection(key ssh.PublicKey, reason string) bool {
	k := reason
	if key != nil {
		k = string(key.Marshal()) + "\x00" + reason
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rejected[k] || len(st.rejected) > 32 {
		return false
	}
	st.rejected[k] = true
	return true
}

// armExpiry schedules the warning and the cut for validBefore. The Clock
// decides; timers only wake us, and re-arm if the Clock says it is early.
func (st *connState) armExpiry(validBefore time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	warnAt := validBefore.Add(-st.srv.cfg.ExpiryWarning)
	st.warnT = st.schedule(warnAt, func() {
		for _, ss := range st.liveSessions() {
			ss.notice(fmt.Sprintf("jitssh: certificate expires at %s; this session will be closed then", validBefore.UTC().Format(time.RFC3339)))
		}
	})
	st.expT = st.schedule(validBefore, func() {
		st.terminate("certificate expired")
	})
}

// schedule runs fn once the Clock reaches at. Called with st.mu held.
func (st *connState) schedule(at time.Time, fn func()) *time.Timer {
	var t *time.Timer
	fire := func() {
		if d := at.Sub(st.srv.cfg.Clock()); d > 0 {
			st.mu.Lock()
			if !st.closed {
				t.Reset(max(d, 10*time.Millisecond))
			}
			st.mu.Unlock()
			return
		}
		fn()
	}
	t = time.AfterFunc(max(at.Sub(st.srv.cfg.Clock()), 0), fire)
	return t
}

func (st *connState) liveSessions() []*session {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]*session, 0, len(st.sessions))
	for ss := range st.sessions {
		out = append(out, ss)
	}
	return out
}

// terminate ends every session with reason (told to the client) and closes
// the connection.
func (st *connState) terminate(reason string) {
	st.terminateWith(reason, "jitssh: "+reason)
}

// newID returns a random 24-hex-digit identifier.
func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// nextSessionID returns the id of the next session channel of the
// connection: the connection id for the first, "-N" suffixed after.
func (st *connState) nextSessionID() (string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.ensureConnIDLocked(); err != nil {
		return "", err
	}
	st.nsessions++
	if st.nsessions == 1 {
		return st.connID, nil
	}
	return fmt.Sprintf("%s-%d", st.connID, st.nsessions), nil
}

// ensureConnIDLocked gives the connection its id; called with st.mu held.
func (st *connState) ensureConnIDLocked() error {
	if st.connID != "" {
		return nil
	}
	id, err := newID()
	if err != nil {
		return err
	}
	st.connID = id
	return nil
}

// targetClient returns the connection's target client, dialing it on first
// use. sessionID names the session that caused the dial (for the target
// certificate's audit record); "" (forwarding before any session) uses the
// connection id, which the first session will also get. Failures are sticky.
func (st *connState) targetClient(ctx context.Context, conn *ssh.ServerConn, id identity, sessionID string) (*ssh.Client, uint64, error) {
	st.dialMu.Lock()
	defer st.dialMu.Unlock()
	st.mu.Lock()
	if st.dialDone {
		defer st.mu.Unlock()
		return st.target, st.targetSN, st.targetErr
	}
	closed := st.closed
	idErr := st.ensureConnIDLocked()
	if sessionID == "" {
		sessionID = st.connID
	}
	st.mu.Unlock()
	if closed {
		return nil, 0, errors.New("connection closed")
	}
	if idErr != nil {
		return nil, 0, idErr
	}
	var hostSN uint64
	c, sn, err := st.srv.dialTarget(ctx, id, sessionID, &hostSN)
	if err != nil {
		st.srv.reject(id.User, id.Host, st.remote, "target: "+err.Error())
	}
	st.mu.Lock()
	st.dialDone = true
	st.target, st.targetSN, st.targetErr = c, sn, err
	closed = st.closed
	if err == nil && !closed {
		// Under st.mu, so that closed0 (which sets closed first) drops them.
		st.srv.serials.add(sn, st, serialEntry{role: roleTarget})
		st.srv.serials.add(hostSN, st, serialEntry{role: roleHost})
	}
	st.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	if closed {
		// closed0 ran during the dial and could not close this client.
		c.Close()
		return nil, 0, errors.New("connection closed")
	}
	st.srv.acceptTargetChannels(st, conn, c, id)
	return c, sn, nil
}

// dialTarget resolves id.Host, mints a per-session target certificate for a
// fresh ed25519 key and opens an SSH connection whose host key is checked
// against the pin or the host CA before authentication. The serial of the
// target's host certificate, if it presented one, goes to *hostSN.
func (s *Server) dialTarget(ctx context.Context, id identity, sessionID string, hostSN *uint64) (*ssh.Client, uint64, error) {
	tgt, ok := s.cfg.Resolve(id.Host)
	if !ok {
		return nil, 0, fmt.Errorf("unknown target host %q", id.Host)
	}
	if tgt.HostKey == nil && s.cfg.HostCA == nil {
		return nil, 0, fmt.Errorf("target %q: no pinned host key and no host CA configured", id.Host)
	}
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), prepareTimeout)
	err := s.cfg.Backend.PrepareAccount(pctx, AccountRequest{RequestID: id.RequestID, User: id.User, Login: id.Login, Host: id.Host, UserSerial: id.Serial})
	pcancel()
	if err != nil {
		return nil, 0, fmt.Errorf("account %s: %w", id.principal(), err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, 0, fmt.Errorf("generate target key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, 0, fmt.Errorf("target key signer: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, 0, fmt.Errorf("target public key: %w", err)
	}
	egress := s.egressFor(tgt.Address)
	bctx, cancel := backendCtx(ctx)
	defer cancel()
	cert, err := s.cfg.Backend.MintTargetCert(bctx, TargetCertRequest{
		RequestID: id.RequestID, SessionID: sessionID, User: id.User, Login: id.Login, Host: id.Host,
		UserSerial: id.Serial, UserCert: id.Cert, ValidBefore: id.ValidBefore, SourceAddresses: egress, Key: sshPub,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("mint target certificate for %s: %w", id.principal(), err)
	}
	if string(cert.Key.Marshal()) != string(sshPub.Marshal()) {
		return nil, 0, errors.New("minted target certificate is for another key")
	}
	certSigner, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, 0, fmt.Errorf("target certificate signer: %w", err)
	}
	checkHostKey, algos, err := s.hostKeyCheck(ctx, tgt)
	if err != nil {
		return nil, 0, err
	}
	hostKeyCB := func(name string, remote net.Addr, key ssh.PublicKey) error {
		if c, ok := key.(*ssh.Certificate); ok {
			*hostSN = c.Serial
		}
		return checkHostKey(name, remote, key)
	}
	ccfg := &ssh.ClientConfig{
		User:              id.Login,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
		HostKeyCallback:   hostKeyCB,
		HostKeyAlgorithms: algos,
		Timeout:           dialTimeout,
		ClientVersion:     "SSH-2.0-jitssh-bastion",
	}
	ccfg.Ciphers = targetLegCiphers()
	ccfg.KeyExchanges, ccfg.MACs = keyExchanges(), macs()
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", tgt.Address)
	if err != nil {
		return nil, 0, fmt.Errorf("dial target %q at %s: %w", id.Host, tgt.Address, err)
	}
	_ = nc.SetDeadline(time.Now().Add(dialTimeout))
	c, chans, reqs, err := ssh.NewClientConn(nc, tgt.Address, ccfg)
	if err != nil {
		nc.Close()
		return nil, 0, fmt.Errorf("ssh handshake with target %q at %s: %w", id.Host, tgt.Address, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), cert.Serial, nil
}

// hostKeyCheck builds the host key callback for tgt: a pinned key must match
// exactly; otherwise a host certificate from HostCA naming tgt.Name or the
// host of tgt.Address, and not revoked (a removed host's certificate must
// not keep opening sessions). Never trust on first use.
func (s *Server) hostKeyCheck(ctx context.Context, tgt Target) (ssh.HostKeyCallback, []string, error) {
	if tgt.HostKey != nil {
		pin := tgt.HostKey.Marshal()
		cb := func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if c, ok := key.(*ssh.Certificate); ok {
				key = c.Key
			}
			if string(key.Marshal()) != string(pin) {
				return fmt.Errorf("target %q host key %s does not match pinned %s", tgt.Name, ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(tgt.HostKey))
			}
			return nil
		}
		algos, err := hostKeyAlgos(tgt.HostKey.Type())
		if err != nil {
			return nil, nil, fmt.Errorf("target %q: %w", tgt.Name, err)
		}
		return cb, algos, nil
	}
	ca := s.cfg.HostCA.Marshal()
	checker := &ssh.CertChecker{
		IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return string(auth.Marshal()) == string(ca) },
		Clock:           s.cfg.Clock,
	}
	addrHost, _, err := net.SplitHostPort(tgt.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("target %q address %q: %w", tgt.Name, tgt.Address, err)
	}
	cb := func(_ string, remote net.Addr, key ssh.PublicKey) error {
		err := checker.CheckHostKey(net.JoinHostPort(tgt.Name, "22"), remote, key)
		if err != nil {
			if err2 := checker.CheckHostKey(net.JoinHostPort(addrHost, "22"), remote, key); err2 != nil {
				return fmt.Errorf("target %q host key %s: %w", tgt.Name, ssh.FingerprintSHA256(key), err)
			}
		}
		cert := key.(*ssh.Certificate) // CheckHostKey accepts certificates only
		revoked, err := s.cfg.Backend.HostCertificateRevoked(ctx, cert.Serial)
		if err != nil {
			return fmt.Errorf("target %q host certificate serial %d: revocation unknown: %w", tgt.Name, cert.Serial, err)
		}
		if revoked {
			return fmt.Errorf("target %q host certificate serial %d is revoked", tgt.Name, cert.Serial)
		}
		return nil
	}
	return cb, targetHostCertAlgorithms(), nil
}

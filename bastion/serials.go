package bastion

import (
	"context"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultRevocationBackstop is Config.RevocationBackstop's default: how often
// a live connection's certificates are looked up while the daemon's change
// feed is healthy (it calls CertificateRevoked as each revocation commits,
// on whichever replica), instead of RevocationInterval.
const DefaultRevocationBackstop = 30 * time.Second

// serialRole says which certificate of a connection a serial is.
type serialRole uint8

const (
	roleUser   serialRole = iota + 1 // the engineer's certificate, presented to the bastion
	roleTarget                       // the session's target certificate, presented by the bastion onward
	roleHost                         // the target's host certificate, presented to the bastion onward
)

// serialIndex finds the live connections that present or use a
// certificate serial, so that a revocation is one lookup, not a scan of
// every connection.
type serialIndex struct {
	mu     sync.Mutex
	serial map[uint64]map[*connState]serialEntry
	conn   map[*connState][]uint64
}

type serialEntry struct {
	role serialRole
	cert *ssh.Certificate // roleUser: the certificate to ask the backend about
}

func (x *serialIndex) add(serial uint64, st *connState, e serialEntry) {
	if serial == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.serial == nil {
		x.serial = map[uint64]map[*connState]serialEntry{}
		x.conn = map[*connState][]uint64{}
	}
	m := x.serial[serial]
	if m == nil {
		m = map[*connState]serialEntry{}
		x.serial[serial] = m
	}
	if _, ok := m[st]; !ok {
		x.conn[st] = append(x.conn[st], serial)
	}
	m[st] = e
}

// drop forgets st (its connection closed).
func (x *serialIndex) drop(st *connState) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, serial := range x.conn[st] {
		delete(x.serial[serial], st)
		if len(x.serial[serial]) == 0 {
			delete(x.serial, serial)
		}
	}
	delete(x.conn, st)
}

type serialUse struct {
	st *connState
	serialEntry
}

func (x *serialIndex) lookup(serial uint64) []serialUse {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]serialUse, 0, len(x.serial[serial]))
	for st, e := range x.serial[serial] {
		out = append(out, serialUse{st, e})
	}
	return out
}

// len is how many serials are indexed, for tests.
func (x *serialIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.serial)
}

// CertificateRevoked says that serial may have been revoked (the daemon's
// change feed saw cert.revoked for it, committed through any replica).
// Every live connection that presents it (the engineer's certificate) or
// whose onward connection uses it (the session's target certificate, the
// target's host certificate) is checked with the backend at once, and ended
// with its sessions if the backend says the certificate is revoked. The
// notice alone ends nothing: a stale or forged one cannot cut a valid
// session, and a failed lookup is logged and left to the periodic check.
// It returns at once; the checks run in the background.
func (s *Server) CertificateRevoked(serial uint64) {
	for _, u := range s.serials.lookup(serial) {
		s.goTracked(func() { u.st.recheck(serial, u.serialEntry) })
	}
}

// recheck asks the backend about one certificate of the connection and
// ends it if the certificate is revoked.
func (st *connState) recheck(serial uint64, e serialEntry) {
	ctx, cancel := backendCtx(context.Background())
	defer cancel()
	var revoked bool
	var err error
	reason := "certificate revoked"
	switch e.role {
	case roleUser:
		var cs CertStatus
		cs, err = st.srv.cfg.Backend.CertificateStatus(ctx, e.cert)
		revoked = err == nil && cs.Revoked
	case roleTarget:
		revoked, err = st.srv.cfg.Backend.TargetCertificateRevoked(ctx, serial)
		reason = "target certificate revoked"
	case roleHost:
		revoked, err = st.srv.cfg.Backend.HostCertificateRevoked(ctx, serial)
		reason = "target host certificate revoked"
	}
	if err != nil {
		st.srv.log.Warn("revocation check failed", "serial", serial, "err", err)
		return
	}
	if revoked {
		st.srv.log.Info(reason+"; ending its connection", "serial", serial, "remote", st.remote)
		st.terminate(reason)
	}
}

// SetFeedHealthy tells the server whether the change feed is delivering
// revocations (true) or not (false, the default): while it is, live
// connections are looked up every RevocationBackstop instead of every
// RevocationInterval. Turning it off brings every connection's next lookup
// forward to RevocationInterval from now.
func (s *Server) SetFeedHealthy(healthy bool) {
	if s.feedHealthy.Swap(healthy) == healthy || healthy {
		return
	}
	s.mu.Lock()
	conns := make([]*connState, 0, len(s.conns))
	for st := range s.conns {
		conns = append(conns, st)
	}
	s.mu.Unlock()
	for _, st := range conns {
		st.mu.Lock()
		if !st.closed && st.revokeT != nil {
			st.revokeT.Reset(s.cfg.RevocationInterval)
		}
		st.mu.Unlock()
	}
}

// revocationInterval is the wait before a live connection's next lookup.
func (s *Server) revocationInterval() time.Duration {
	if s.feedHealthy.Load() {
		return max(s.cfg.RevocationBackstop, s.cfg.RevocationInterval)
	}
	return s.cfg.RevocationInterval
}

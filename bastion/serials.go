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
	st     *connState
	serial uint64
	serialEntry
}

func (x *serialIndex) lookup(serial uint64) []serialUse {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]serialUse, 0, len(x.serial[serial]))
	for st, e := range x.serial[serial] {
		out = append(out, serialUse{st, serial, e})
	}
	return out
}

// of returns every certificate st presents or uses.
func (x *serialIndex) of(st *connState) []serialUse {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]serialUse, 0, len(x.conn[st]))
	for _, serial := range x.conn[st] {
		out = append(out, serialUse{st, serial, x.serial[serial][st]})
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
// session. A failed lookup is logged and tried again after 1s, 2s, 4s and
// 8s, and the periodic check (watchRevocation) asks about every one of the
// connection's certificates anyway. It returns at once; the checks run in
// the background.
func (s *Server) CertificateRevoked(serial uint64) {
	for _, u := range s.serials.lookup(serial) {
		s.goTracked(func() { u.st.recheck(u.serialEntry, serial, recheckRetries) })
	}
}

// recheckRetries is how many times a feed-triggered lookup that failed is
// tried again, with recheckBackoff doubling between them.
const (
	recheckRetries = 4
	recheckBackoff = time.Second
)

// recheck asks the backend about one certificate of the connection and
// ends it if the certificate is revoked; a failed lookup is tried again
// after a backoff, retries more times at most.
func (st *connState) recheck(e serialEntry, serial uint64, retries int) {
	ctx, cancel := backendCtx(context.Background())
	revoked, reason, err := st.certRevoked(ctx, serial, e)
	cancel()
	if err != nil {
		st.srv.log.Warn("revocation check failed", "serial", serial, "err", err, "retries_left", retries)
		if retries > 0 {
			wait := recheckBackoff << (recheckRetries - retries)
			time.AfterFunc(wait, func() {
				st.mu.Lock()
				closed := st.closed
				st.mu.Unlock()
				if !closed {
					st.srv.goTracked(func() { st.recheck(e, serial, retries-1) })
				}
			})
		}
		return
	}
	if revoked {
		st.srv.log.Info(reason+"; ending its connection", "serial", serial, "remote", st.remote)
		st.terminate(reason)
	}
}

// certRevoked asks the backend whether one certificate of the connection
// is revoked, and says which it is.
func (st *connState) certRevoked(ctx context.Context, serial uint64, e serialEntry) (bool, string, error) {
	switch e.role {
	case roleUser:
		cs, err := st.srv.cfg.Backend.CertificateStatus(ctx, e.cert)
		return err == nil && cs.Revoked, "certificate revoked", err
	case roleTarget:
		revoked, err := st.srv.cfg.Backend.TargetCertificateRevoked(ctx, serial)
		return revoked, "target certificate revoked", err
	case roleHost:
		revoked, err := st.srv.cfg.Backend.HostCertificateRevoked(ctx, serial)
		return revoked, "target host certificate revoked", err
	}
	return false, "", nil
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

package bastion

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jitssh/jitssh/ratelimit"
)

// Defaults of the bounds on connections that have not authenticated yet.
// A connection costs a goroutine, buffers and an fd before it has proved
// anything, so these are what an unauthenticated peer can hold.
const (
	// DefaultAuthTimeout is how long a connection may take from accept to
	// a proved certificate (banner, key exchange and authentication).
	DefaultAuthTimeout = 20 * time.Second
	// DefaultMaxUnauthenticated caps connections not yet authenticated.
	DefaultMaxUnauthenticated = 256
	// DefaultMaxUnauthenticatedPerAddr caps them per source IP address.
	DefaultMaxUnauthenticatedPerAddr = 16
)

// refusalLogInterval is how often refused connections are logged: once
// per interval with a count, never once per connection, so a flood cannot
// flood the log.
const refusalLogInterval = time.Minute

// connLimiter counts unauthenticated connections in total and per source
// address and refuses those over its caps.
type connLimiter struct {
	maxTotal, maxPerAddr int
	log                  *slog.Logger

	refusedTotal atomic.Uint64

	mu         sync.Mutex
	total      int
	perAddr    map[string]int
	sinceLog   uint64    // refusals not yet logged
	lastLogged time.Time // when a refusal was last logged
}

func newConnLimiter(maxTotal, maxPerAddr int, log *slog.Logger) *connLimiter {
	return &connLimiter{maxTotal: maxTotal, maxPerAddr: maxPerAddr, log: log, perAddr: map[string]int{}}
}

// acquire admits one unauthenticated connection from remote, or reports
// false (counted, and logged at most once per refusalLogInterval) when a
// cap is reached. release must be called once, when the connection
// authenticates or closes, whichever is first; extra calls do nothing.
func (l *connLimiter) acquire(remote net.Addr) (release func(), ok bool) {
	host := hostOf(remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal || l.perAddr[host] >= l.maxPerAddr {
		l.refusedLocked(host)
		return nil, false
	}
	l.total++
	l.perAddr[host]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.perAddr[host]--; l.perAddr[host] <= 0 {
				delete(l.perAddr, host)
			}
		})
	}, true
}

// refusedLocked counts a refusal and logs the refusals since the last log
// line if the interval has passed. Called with l.mu held.
func (l *connLimiter) refusedLocked(host string) {
	l.refusedTotal.Add(1)
	l.sinceLog++
	now := time.Now()
	if now.Sub(l.lastLogged) < refusalLogInterval {
		return
	}
	l.log.Warn("unauthenticated connections refused over the cap",
		"refused", l.sinceLog, "last_client", host, "open_unauthenticated", l.total,
		"max_total", l.maxTotal, "max_per_address", l.maxPerAddr, "interval", refusalLogInterval)
	l.sinceLog = 0
	l.lastLogged = now
}

// hostOf is the unit of the per-address cap: remote's IPv4 address, or
// the /64 of its IPv6 address (ratelimit.AddressKey).
func hostOf(remote net.Addr) string {
	if tcp, ok := remote.(*net.TCPAddr); ok {
		return ratelimit.AddressKey(tcp.IP.String())
	}
	return ratelimit.AddressKey(remote.String())
}

// RefusedConnections is how many connections were closed at accept because
// the unauthenticated caps were reached, since the server started.
func (s *Server) RefusedConnections() uint64 { return s.limiter.refusedTotal.Load() }

// armAuthDeadline closes the connection unless authenticated is called
// within the auth timeout.
func (st *connState) armAuthDeadline(timeout time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.authT = time.AfterFunc(timeout, func() {
		st.mu.Lock()
		authed := st.authed
		st.mu.Unlock()
		if !authed {
			st.srv.log.Info("connection closed: no authentication within the deadline", "client", st.remote, "timeout", timeout)
			st.raw.Close()
		}
	})
}

// authenticated marks the connection as having proved a certificate: the
// auth deadline no longer applies and it leaves the unauthenticated count.
func (st *connState) authenticated() {
	st.mu.Lock()
	st.authed = true
	if st.authT != nil {
		st.authT.Stop()
	}
	release := st.releaseUnauth
	st.mu.Unlock()
	if release != nil {
		release()
	}
}

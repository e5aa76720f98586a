package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jitssh/jitssh/proxyproto"
)

// proxyRefusalLogEvery is how often at most a refused balancer connection
// is logged: a misconfigured balancer refuses every connection, and one
// line a minute with a count says so without flooding the log.
const proxyRefusalLogEvery = time.Minute

// Reasons a balancer's connection is refused, the metric's reason label.
const (
	proxyMissing   = "missing"
	proxyMalformed = "malformed"
	proxyTimeout   = "timeout"
)

// proxyGate puts the PROXY protocol (Config.ProxyProtocolFrom) in front of
// the API's and the bastion's listeners, so everything after them — the
// API's client address, login rate buckets, SSO and challenge bounds per
// address, the bastion's caps, source-address checks, audit records — sees
// the client behind a balancer. It counts and logs the connections it
// refuses. A nil gate wraps nothing.
type proxyGate struct {
	from []netip.Prefix
	log  *slog.Logger

	// refused counts by listener ("api", "bastion") and reason.
	refused map[string]map[string]*atomic.Uint64

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int
}

// newProxyGate parses the balancers' CIDRs; none means no gate (nil).
func newProxyGate(from []string, log *slog.Logger) (*proxyGate, error) {
	if len(from) == 0 {
		return nil, nil
	}
	prefixes, err := proxyproto.ParsePrefixes(from)
	if err != nil {
		return nil, fmt.Errorf("--proxy-protocol-from: %w", err)
	}
	g := &proxyGate{from: prefixes, log: log.With("component", "proxyproto"), refused: map[string]map[string]*atomic.Uint64{}}
	for _, ln := range []string{"api", "bastion"} {
		g.refused[ln] = map[string]*atomic.Uint64{}
		for _, r := range []string{proxyMissing, proxyMalformed, proxyTimeout} {
			g.refused[ln][r] = new(atomic.Uint64)
		}
	}
	return g, nil
}

// wrap puts the gate in front of ln, the listener named name.
func (g *proxyGate) wrap(ln net.Listener, name string) (net.Listener, error) {
	if g == nil {
		return ln, nil
	}
	return proxyproto.NewListener(ln, proxyproto.Config{From: g.from,
		Refused: func(peer net.Addr, err error) { g.refuse(name, peer, err) }})
}

// refuse counts a refused connection and logs it unless one was logged
// within proxyRefusalLogEvery.
func (g *proxyGate) refuse(listener string, peer net.Addr, err error) {
	reason := proxyMalformed
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		reason = proxyTimeout
	case errors.Is(err, proxyproto.ErrNoHeader), errors.Is(err, io.EOF):
		reason = proxyMissing
	}
	g.refused[listener][reason].Add(1)
	now := time.Now()
	g.mu.Lock()
	if !g.lastLog.IsZero() && now.Sub(g.lastLog) < proxyRefusalLogEvery {
		g.suppressed++
		g.mu.Unlock()
		return
	}
	suppressed := g.suppressed
	g.lastLog, g.suppressed = now, 0
	g.mu.Unlock()
	g.log.Warn("connection from a PROXY protocol balancer refused: it must start with a PROXY protocol header (check send-proxy-v2 and --proxy-protocol-from)",
		"listener", listener, "balancer", peer.String(), "reason", reason, "err", err, "refused_unlogged", suppressed)
}

// metrics writes the refusal counters (nothing without a gate).
func (g *proxyGate) metrics(b *strings.Builder) {
	if g == nil {
		return
	}
	family(b, "jitssh_proxy_protocol_refused_total", "counter", "Connections from --proxy-protocol-from balancers closed for a missing, malformed or slow PROXY protocol header, by listener and reason.")
	for _, ln := range []string{"api", "bastion"} {
		for _, r := range []string{proxyMissing, proxyMalformed, proxyTimeout} {
			fmt.Fprintf(b, "jitssh_proxy_protocol_refused_total{listener=%q,reason=%q} %d\n", ln, r, g.refused[ln][r].Load())
		}
	}
}

// apiErrorLog is the API server's error log at warning level, without the
// TLS handshake errors of connections the gate refused: the gate logs
// those once a minute, and a misconfigured balancer would otherwise write
// a line per connection.
func apiErrorLog(h slog.Handler) *log.Logger {
	return log.New(refusalFilter{slog.NewLogLogger(h, slog.LevelWarn).Writer()}, "", 0)
}

type refusalFilter struct{ w io.Writer }

func (f refusalFilter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(proxyproto.ErrHeader.Error())) {
		return len(p), nil
	}
	return f.w.Write(p)
}

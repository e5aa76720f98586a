package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/proxyproto"
	"github.com/jitssh/jitssh/ratelimit"
)

// Defaults of the API's bounds (docs/api.md says how to change each).
const (
	// DefaultAPIReadTimeout bounds reading a whole request, headers and
	// body: bodies are small JSON, so a slow body (one byte a second) is
	// cut here.
	DefaultAPIReadTimeout = 30 * time.Second
	// DefaultAPIWriteTimeout bounds writing an answer. Recording
	// downloads and `jit sessions watch` streams extend it per write.
	DefaultAPIWriteTimeout = 2 * time.Minute
	// DefaultAPIIdleTimeout closes keep-alive connections idle this long.
	DefaultAPIIdleTimeout = 2 * time.Minute
	// DefaultAPIMaxConns caps the API's open connections; further ones
	// wait in the kernel's accept queue.
	DefaultAPIMaxConns = 512
	// apiHeaderTimeout bounds reading the request headers.
	apiHeaderTimeout = 10 * time.Second
)

// Limits are the bounds jitd puts on what comes from outside. Zero fields
// take the defaults of bastion, grant and this package.
type Limits struct {
	// BastionAuthTimeout bounds accept to authenticated on the bastion.
	BastionAuthTimeout time.Duration
	// BastionMaxUnauth and BastionMaxUnauthPerAddr cap the bastion's
	// unauthenticated connections in total and per source address.
	BastionMaxUnauth, BastionMaxUnauthPerAddr int
	// APIReadTimeout, APIWriteTimeout and APIIdleTimeout are the API
	// server's http.Server timeouts.
	APIReadTimeout, APIWriteTimeout, APIIdleTimeout time.Duration
	// APIMaxConns caps the API's concurrent connections.
	APIMaxConns int
	// Login bounds login challenges and attempts per client address;
	// Requests bounds request creation per user.
	Login, Requests ratelimit.Limit
}

// withDefaults fills zero fields and refuses negative ones.
func (l Limits) withDefaults() (Limits, error) {
	if l.BastionAuthTimeout < 0 || l.APIReadTimeout < 0 || l.APIWriteTimeout < 0 || l.APIIdleTimeout < 0 ||
		l.BastionMaxUnauth < 0 || l.BastionMaxUnauthPerAddr < 0 || l.APIMaxConns < 0 {
		return l, fmt.Errorf("limits: negative bound in %+v", l)
	}
	l.BastionAuthTimeout = cmp.Or(l.BastionAuthTimeout, bastion.DefaultAuthTimeout)
	l.BastionMaxUnauth = cmp.Or(l.BastionMaxUnauth, bastion.DefaultMaxUnauthenticated)
	l.BastionMaxUnauthPerAddr = cmp.Or(l.BastionMaxUnauthPerAddr, bastion.DefaultMaxUnauthenticatedPerAddr)
	l.APIReadTimeout = cmp.Or(l.APIReadTimeout, DefaultAPIReadTimeout)
	l.APIWriteTimeout = cmp.Or(l.APIWriteTimeout, DefaultAPIWriteTimeout)
	l.APIIdleTimeout = cmp.Or(l.APIIdleTimeout, DefaultAPIIdleTimeout)
	l.APIMaxConns = cmp.Or(l.APIMaxConns, DefaultAPIMaxConns)
	l.Login = cmp.Or(l.Login, grant.DefaultLoginLimit())
	l.Requests = cmp.Or(l.Requests, grant.DefaultRequestLimit())
	for _, rl := range []ratelimit.Limit{l.Login, l.Requests} {
		if err := rl.Validate(); err != nil {
			return l, fmt.Errorf("limits: %w", err)
		}
	}
	return l, nil
}

// apiTimeouts sets the API server's timeouts from l.
func (l Limits) apiTimeouts(s *http.Server) {
	s.ReadHeaderTimeout = apiHeaderTimeout
	s.ReadTimeout = l.APIReadTimeout
	s.WriteTimeout = l.APIWriteTimeout
	s.IdleTimeout = l.APIIdleTimeout
}

// limitListener accepts at most cap(sem) connections at once: Accept
// waits for a slot, and closing a connection frees its slot. One address
// (an IPv6 /64, ratelimit.AddressKey) holds at most a quarter of the slots:
// a connection over that is closed at once, so that a single client
// cannot hold every slot and lock everyone else out. The address of a
// connection from a PROXY protocol balancer is the client's, known only
// once its header is read: that one is counted on its first Read or Write,
// in the goroutine serving it, never in Accept.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	done    chan struct{}
	once    sync.Once
	perAddr int

	mu     sync.Mutex
	byAddr map[string]int
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{}),
		perAddr: max(1, n/4), byAddr: map[string]int{}}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		lc := &limitConn{Conn: c, l: l}
		if _, lazy := c.(*proxyproto.Conn); lazy {
			return lc, nil
		}
		key := ratelimit.AddressKey(c.RemoteAddr().String())
		if !l.take(key) {
			c.Close()
			continue // its slot stays taken for the next connection
		}
		lc.admit.Do(func() { lc.key = key })
		return lc, nil
	}
}

// take counts one more connection from key, unless it has its share.
func (l *limitListener) take(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[key] >= l.perAddr {
		return false
	}
	l.byAddr[key]++
	return true
}

// release frees a slot, and key's count unless key is "" (a connection
// never counted).
func (l *limitListener) release(key string) {
	if key != "" {
		l.mu.Lock()
		if l.byAddr[key]--; l.byAddr[key] <= 0 {
			delete(l.byAddr, key)
		}
		l.mu.Unlock()
	}
	<-l.sem
}

// Close stops Accept, including one waiting for a slot.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// errOverShare is a connection closed for its address's share of slots.
var errOverShare = errors.New("too many connections from one address")

type limitConn struct {
	net.Conn
	l *limitListener

	admit    sync.Once
	admitErr error
	key      string // set by admit; "" if never counted

	closeOnce sync.Once
}

// admitted counts a balancer's connection against its client's address
// once, closing it if that address has its share already.
func (c *limitConn) admitted() error {
	c.admit.Do(func() {
		key := ratelimit.AddressKey(c.Conn.RemoteAddr().String())
		if !c.l.take(key) {
			c.admitErr = fmt.Errorf("%w (%s)", errOverShare, key)
			c.Conn.Close()
			c.closeOnce.Do(func() { c.l.release("") })
			return
		}
		c.key = key
	})
	return c.admitErr
}

func (c *limitConn) Read(b []byte) (int, error) {
	if err := c.admitted(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *limitConn) Write(b []byte) (int, error) {
	if err := c.admitted(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Close closes the connection and frees its slot once. A connection closed
// before it was counted is never counted (closing the socket first ends a
// header read in progress, so the wait for admission is short).
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.admit.Do(func() { c.admitErr = net.ErrClosed })
	c.closeOnce.Do(func() { c.l.release(c.key) })
	return err
}

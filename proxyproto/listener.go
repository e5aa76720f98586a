package proxyproto

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultTimeout bounds reading a balancer's header when Config says
// nothing: a balancer sends it at once, with the connection.
const DefaultTimeout = 5 * time.Second

// Config says whose connections carry a header.
type Config struct {
	// From are the balancers: a connection from inside one of them must
	// start with a header; one from anywhere else is never parsed (its
	// sender could otherwise name any address) and keeps its own address.
	From []netip.Prefix
	// Timeout bounds reading the header; zero means DefaultTimeout.
	Timeout time.Duration
	// Refused, if set, is called once for every connection closed for a
	// missing, malformed or slow header, with the balancer's address and
	// the reason; it runs in the connection's goroutine.
	Refused func(peer net.Addr, err error)
}

// ParsePrefixes parses CIDRs (or single addresses, taken as /32 or /128)
// as Config.From wants them, naming the first bad one.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("proxy protocol balancer %q: want a CIDR such as 10.0.0.0/24 or an address", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Listener is a net.Listener whose connections from Config.From have their
// header read, and their RemoteAddr replaced by its source.
type Listener struct {
	net.Listener
	cfg Config
}

// NewListener wraps ln. With no Config.From, it changes nothing but the
// type of the connections.
func NewListener(ln net.Listener, cfg Config) (*Listener, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("proxy protocol: negative header timeout %v", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Listener{Listener: ln, cfg: cfg}, nil
}

// Accept returns the next connection at once: the header, if it must have
// one, is read by the connection's first Read, Write or RemoteAddr, in the
// goroutine serving it, so a slow balancer connection never holds up the
// others.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.trusted(c.RemoteAddr()) {
		return c, nil
	}
	return &Conn{Conn: c, cfg: &l.cfg}, nil
}

// trusted reports whether addr is inside one of the balancers' prefixes.
func (l *Listener) trusted(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	a, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range l.cfg.From {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Conn is a connection from a balancer. Until its header has been read,
// Read, Write and RemoteAddr wait for it; after a bad one the connection is
// closed, Read and Write fail with the reason and RemoteAddr is the
// balancer's.
type Conn struct {
	net.Conn
	cfg *Config

	once   sync.Once
	err    error
	remote net.Addr
	header Header

	// mu guards readDeadline, the caller's own read deadline, which the
	// header's bounded read must neither lose nor let the caller extend,
	// and read, set once the header has been read.
	mu           sync.Mutex
	readDeadline time.Time
	read         bool
}

// ErrHeader is wrapped by the errors of connections refused for their
// header.
var ErrHeader = errors.New("proxy protocol header refused")

func (c *Conn) resolve() error {
	c.once.Do(func() {
		c.remote = c.Conn.RemoteAddr()
		c.mu.Lock()
		user := c.readDeadline
		c.mu.Unlock()
		dl := time.Now().Add(c.cfg.Timeout)
		if !user.IsZero() && user.Before(dl) {
			dl = user
		}
		if err := c.Conn.SetReadDeadline(dl); err != nil {
			c.fail(fmt.Errorf("set header deadline: %w", err))
			return
		}
		h, err := Read(c.Conn)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("no complete header within %v: %w", c.cfg.Timeout, err)
			}
			c.fail(err)
			return
		}
		c.mu.Lock()
		c.read = true
		err = c.Conn.SetReadDeadline(c.readDeadline)
		c.mu.Unlock()
		if err != nil {
			c.fail(fmt.Errorf("restore read deadline: %w", err))
			return
		}
		c.header = h
		if h.Command == Proxy {
			c.remote = h.Source
		}
	})
	return c.err
}

// fail closes the connection for err and reports it.
func (c *Conn) fail(err error) {
	c.err = fmt.Errorf("%w from balancer %v: %w", ErrHeader, c.remote, err)
	c.Conn.Close()
	if c.cfg.Refused != nil {
		c.cfg.Refused(c.remote, err)
	}
}

// Header returns the connection's header once read, or the reason it was
// refused.
func (c *Conn) Header() (Header, error) {
	err := c.resolve()
	return c.header, err
}

// RemoteAddr is the client's address the header named; the connection's
// own for a LOCAL header or a refused one.
func (c *Conn) RemoteAddr() net.Addr {
	c.resolve()
	return c.remote
}

// Read reads the relayed data after the header.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.resolve(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Write writes to the client only once the header has been read, so a
// balancer's connection without one learns nothing.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.resolve(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// SetDeadline sets both deadlines; the read one applies after the header.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// SetReadDeadline sets the read deadline of the data after the header
// (the header's own is Config.Timeout, or this one if sooner).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if !c.read {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

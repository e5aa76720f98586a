package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/proxyproto"
)

// v1Header is a PROXY protocol v1 line naming client as the source.
func v1Header(client string) string {
	return "PROXY TCP4 " + client + " 127.0.0.1 40000 7443\r\n"
}

// TestLimitListenerBehindBalancer: behind a PROXY protocol balancer the cap
// per address counts the clients named by the headers, not the balancer
// (every connection comes from it), and a refused header is counted.
func TestLimitListenerBehindBalancer(t *testing.T) {
	gate, err := newProxyGate([]string{"127.0.0.1/32"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := gate.wrap(inner, "api")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(wrapped, 8) // 2 per address
	defer l.Close()
	accepted := acceptAll(l, 8)
	send := func(header string) net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, header+"x"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	readOne := func() error {
		t.Helper()
		select {
		case c := <-accepted:
			t.Cleanup(func() { c.Close() })
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := c.Read(make([]byte, 1))
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	// Three clients behind the one balancer, two connections each would
	// be refused if the balancer's address were counted.
	for _, client := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"} {
		send(v1Header(client))
		if err := readOne(); err != nil {
			t.Fatalf("connection of %s through the balancer: %v", client, err)
		}
	}
	send(v1Header("192.0.2.1"))
	if err := readOne(); !errors.Is(err, errOverShare) {
		t.Errorf("a third connection of 192.0.2.1: read %v, want %v", err, errOverShare)
	}
	// A balancer connection whose header is slow to come is accepted at
	// once, and holds up no other.
	send("")
	var slow net.Conn
	select {
	case slow = <-accepted:
		defer slow.Close()
	case <-time.After(3 * time.Second):
		t.Fatal("Accept waited for a slow header")
	}
	send(v1Header("192.0.2.9"))
	if err := readOne(); err != nil {
		t.Fatalf("a connection after a slow one: %v", err)
	}
	send("GET / HTTP/1.1\r\n")
	if err := readOne(); err == nil {
		t.Error("a balancer connection without a header was served")
	}
	var b strings.Builder
	gate.metrics(&b)
	if want := `jitssh_proxy_protocol_refused_total{listener="api",reason="missing"} 1`; !strings.Contains(b.String(), want) {
		t.Errorf("metrics lack %s:\n%s", want, b.String())
	}
}

func TestProxyGateFlag(t *testing.T) {
	if g, err := newProxyGate(nil, slog.Default()); g != nil || err != nil {
		t.Errorf("no balancers: %v, %v; want no gate", g, err)
	}
	if _, err := newProxyGate([]string{"10.0.0.0/8", "lb.internal"}, slog.Default()); err == nil || !strings.Contains(err.Error(), `"lb.internal"`) {
		t.Errorf("a name as balancer: %v, want an error naming it", err)
	}
}

// TestAPIErrorLogLeavesOutRefusals: the API server's log keeps its own
// errors and leaves out those of connections the gate refused and logged.
func TestAPIErrorLogLeavesOutRefusals(t *testing.T) {
	var b strings.Builder
	l := apiErrorLog(slog.NewTextHandler(&b, nil))
	l.Printf("http: TLS handshake error from 127.0.0.1:4000: %v", fmt.Errorf("%w from balancer 127.0.0.1:4000: no PROXY protocol header", proxyproto.ErrHeader))
	l.Printf("http: TLS handshake error from 192.0.2.1:4000: EOF")
	if got := b.String(); strings.Contains(got, "127.0.0.1:4000") || !strings.Contains(got, "192.0.2.1:4000") || !strings.Contains(got, "level=WARN") {
		t.Errorf("API error log:\n%s\nwant the second line only, at WARN", got)
	}
}

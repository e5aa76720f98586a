package daemon

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jitssh/jitssh/ratelimit"
)

func TestLimitsWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Limits
		ok   bool
	}{
		{"zero takes defaults", Limits{}, true},
		{"negative timeout", Limits{APIReadTimeout: -time.Second}, false},
		{"negative cap", Limits{BastionMaxUnauthPerAddr: -1}, false},
		{"bad rate", Limits{Login: ratelimit.Limit{Events: 0, Per: time.Minute}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.withDefaults()
			if (err == nil) != tt.ok {
				t.Fatalf("withDefaults(%+v) error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && (got.APIReadTimeout != DefaultAPIReadTimeout || got.APIMaxConns != DefaultAPIMaxConns || got.Login.Events == 0) {
				t.Errorf("defaults not filled: %+v", got)
			}
		})
	}
}

// TestLimitListener checks that the cap holds the next Accept until a
// connection is closed.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 1)
	defer l.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first := <-accepted
	select {
	case <-accepted:
		t.Fatal("a second connection was accepted over a cap of 1")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("closing the first connection did not free its slot")
	}
}

// TestLimitListenerPerAddress: one address holds at most a quarter of the
// slots; a connection over that is closed at once, and closing one of its
// connections lets the next in.
func TestLimitListenerPerAddress(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 8) // 2 per address
	defer l.Close()
	accepted := acceptAll(l, 8)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, <-accepted)
	}
	third, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection from one address: read %v, want it closed at once", err)
	}
	held[0].Close()
	fourth, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer fourth.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("closing a connection did not let the address in again")
	}
}

// acceptAll accepts connections from l until it is closed, into a channel
// of capacity n.
func acceptAll(l net.Listener, n int) <-chan net.Conn {
	accepted := make(chan net.Conn, n)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

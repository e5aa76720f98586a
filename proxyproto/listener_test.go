package proxyproto

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// listen serves ln wrapped with cfg on 127.0.0.1, trusting 127.0.0.1 only,
// and hands each accepted connection to the returned channel.
func listen(t *testing.T, timeout time.Duration, refused func(net.Addr, error)) (addr string, conns <-chan net.Conn) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := NewListener(raw, Config{From: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Timeout: timeout, Refused: refused})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 4)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
			ch <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range accepted {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// dial connects to addr from the loopback address from.
func dial(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next accepted connection, with a read deadline that
// bounds every read of the test.
func next(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

func TestListenerTrustedHeader(t *testing.T) {
	cases := []struct {
		name, want string
		header     []byte
	}{
		{name: "v2 proxy", header: v2(0x21, famTCP4, tcp4()), want: "192.0.2.7:51000"},
		{name: "v1 proxy", header: []byte("PROXY TCP6 2001:db8::7 2001:db8::1 51000 22\r\n"), want: "[2001:db8::7]:51000"},
		{name: "v2 local keeps the balancer", header: v2(0x20, 0x00), want: "127.0.0.1:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := listen(t, 5*time.Second, func(a net.Addr, err error) { t.Errorf("refused %v: %v", a, err) })
			c := dial(t, "127.0.0.1", addr)
			if _, err := c.Write(append(tc.header, "hello"...)); err != nil {
				t.Fatal(err)
			}
			s := next(t, conns)
			if got := s.RemoteAddr().String(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("RemoteAddr = %s, want %s", got, tc.want)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello" {
				t.Errorf("read %q, %v after the header, want hello", buf, err)
			}
		})
	}
}

func TestListenerRefusesTrustedWithoutHeader(t *testing.T) {
	refused := make(chan error, 1)
	addr, conns := listen(t, 5*time.Second, func(a net.Addr, err error) { refused <- err })
	c := dial(t, "127.0.0.1", addr)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	s := next(t, conns)
	_, err := s.Read(make([]byte, 1))
	if !errors.Is(err, ErrHeader) || !errors.Is(err, ErrNoHeader) {
		t.Fatalf("Read = %v, want a refusal for a missing header", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrHeader) {
		t.Errorf("Write after the refusal = %v, want the refusal", err)
	}
	select {
	case err := <-refused:
		if !errors.Is(err, ErrNoHeader) {
			t.Errorf("Refused got %v, want ErrNoHeader", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Refused not called")
	}
	// The balancer's side sees the connection closed, nothing written.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("client read %d, %v; want the connection closed", n, err)
	}
}

func TestListenerUntrustedNotParsed(t *testing.T) {
	addr, conns := listen(t, 5*time.Second, func(a net.Addr, err error) { t.Errorf("refused %v: %v", a, err) })
	forged := v2(0x21, famTCP4, tcp4())
	c := dial(t, "127.0.0.2", addr)
	if _, err := c.Write(forged); err != nil {
		t.Fatal(err)
	}
	s := next(t, conns)
	if got := s.RemoteAddr().String(); !strings.HasPrefix(got, "127.0.0.2:") {
		t.Errorf("RemoteAddr = %s, want the direct client's 127.0.0.2", got)
	}
	buf := make([]byte, len(forged))
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != string(forged) {
		t.Errorf("read %q, %v; want the forged header as plain data", buf, err)
	}
}

func TestListenerSlowHeader(t *testing.T) {
	refused := make(chan error, 1)
	addr, conns := listen(t, 300*time.Millisecond, func(a net.Addr, err error) { refused <- err })
	slow := dial(t, "127.0.0.1", addr)
	if _, err := slow.Write(v2Sig[:5]); err != nil {
		t.Fatal(err)
	}
	s1 := next(t, conns)
	done := make(chan error, 1)
	go func() {
		_, err := s1.Read(make([]byte, 1))
		done <- err
	}()
	// Another balancer connection is accepted and served meanwhile.
	fast := dial(t, "127.0.0.1", addr)
	if _, err := fast.Write(v2(0x21, famTCP4, tcp4())); err != nil {
		t.Fatal(err)
	}
	if got := next(t, conns).RemoteAddr().String(); got != "192.0.2.7:51000" {
		t.Errorf("second connection's RemoteAddr = %s", got)
	}
	select {
	case err := <-done:
		var ne net.Error
		if !errors.Is(err, ErrHeader) || !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "within 300ms") {
			t.Errorf("slow header: Read = %v, want a header timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow header never timed out")
	}
	select {
	case err := <-refused:
		if err == nil {
			t.Error("Refused got nil")
		}
	case <-time.After(5 * time.Second):
		t.Error("Refused not called for the slow header")
	}
}

// TestListenerKeepsReadDeadline: the caller's read deadline, set before
// the header arrived, still holds for the data after it.
func TestListenerKeepsReadDeadline(t *testing.T) {
	addr, conns := listen(t, 5*time.Second, nil)
	c := dial(t, "127.0.0.1", addr)
	s := next(t, conns)
	if err := s.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(v2(0x21, famTCP4, tcp4())); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read = %v, want the caller's deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller's read deadline was lost")
	}
}

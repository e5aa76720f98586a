package apiserver

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fullListener is a TCP socket on loopback that listens with a backlog of
// 0 and never accepts, filled until a connect to it hangs: the kernel then
// drops every further SYN, as a blackholed host does. It returns its
// address.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	in := sa.(*syscall.SockaddrInet4)
	for range 16 {
		c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(c) })
		err = syscall.Connect(c, &syscall.SockaddrInet4{Port: in.Port, Addr: in.Addr})
		if err != syscall.EINPROGRESS && err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		// Connected, or still waiting for the SYN-ACK that never comes.
		if _, err := syscall.Getpeername(c); err != nil {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.Port))
		}
	}
	t.Fatal("the listener's backlog never filled")
	return ""
}

// TestProxyTransportDialBounded: the live-watch proxy gives up on an
// owner that never answers the connect once its dial timeout passes,
// rather than after the kernel's (about two minutes).
func TestProxyTransportDialBounded(t *testing.T) {
	addr := fullListener(t)
	tr := proxyTransport(nil, 300*time.Millisecond)
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // the test's own bound
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/sessions/x/watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.RoundTrip(req)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("round trip to a blackholed owner: %v (test bound reached: %v), want the dial timeout", err, ctx.Err())
	}
	if proxyDialTimeout <= 0 || proxyDialTimeout > 30*time.Second {
		t.Fatalf("proxyDialTimeout %s", proxyDialTimeout)
	}
}

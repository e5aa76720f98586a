package netnstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialFrom connects from inside h to addr with bash's /dev/tcp (no client
// tool needed) and sends hello.
func dialFrom(t *testing.T, h *Host, addr netip.AddrPort) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && echo hello >&3", addr.Addr(), addr.Port())
	out, err := h.Command(ctx, "bash", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bash in %s: %w: %s", h, err, out)
	}
	return nil
}

// acceptOne accepts one connection on l and returns its remote address.
func acceptOne(t *testing.T, l net.Listener) <-chan netip.AddrPort {
	t.Helper()
	got := make(chan netip.AddrPort, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(got)
			return
		}
		defer c.Close()
		got <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
	}()
	return got
}

func TestNewHosts(t *testing.T) {
	var a, b *Host
	t.Run("two hosts", func(t *testing.T) {
		a, b = New(t, "a"), New(t, "b")
		if a.Name == b.Name || a.Subnet().Overlaps(b.Subnet()) {
			t.Fatalf("hosts %s and %s share a namespace or subnet", a, b)
		}
		tests := []struct {
			name     string
			from     *Host
			listenOn netip.Addr // an address of the root namespace
		}{
			{name: "a reaches the root side of its veth", from: a, listenOn: a.HostAddr},
			// b reaches a root-namespace address on another interface through
			// its route to Range, as an engineer's machine reaches the API.
			{name: "b reaches the root side of a's veth", from: b, listenOn: a.HostAddr},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				l, err := net.Listen("tcp", netip.AddrPortFrom(tt.listenOn, 0).String())
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				got := acceptOne(t, l)
				if err := dialFrom(t, tt.from, l.Addr().(*net.TCPAddr).AddrPort()); err != nil {
					t.Fatal(err)
				}
				select {
				case src := <-got:
					if src.Addr() != tt.from.Addr {
						t.Fatalf("connection from %s, want from %s's own address %s", src, tt.from.Label, tt.from.Addr)
					}
				case <-time.After(opTimeout):
					t.Fatal("no connection accepted")
				}
			})
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		out, err := a.Command(ctx, "ip", "-o", "addr", "show", "dev", a.Peer).CombinedOutput()
		if err != nil || !strings.Contains(string(out), a.Addr.String()+"/30") {
			t.Fatalf("inside %s: %v %s, want its address %s on %s", a, err, out, a.Addr, a.Peer)
		}
		if left := Leftovers(a); !strings.Contains(left, "namespace "+a.Name) || !strings.Contains(left, "link "+a.Link) {
			t.Fatalf("Leftovers of a live host = %q, want its namespace and link", left)
		}
	})
	if a == nil || b == nil {
		t.Fatal("hosts not made")
	}
	for _, h := range []*Host{a, b} {
		if left := Leftovers(h); left != "" {
			t.Errorf("after the subtest, %s left %s", h, left)
		}
	}
}

// TestRemoveWithProcessInside checks that cleanup removes the veth and
// the namespace's name even while a process keeps the namespace alive.
func TestRemoveWithProcessInside(t *testing.T) {
	var h *Host
	var sleeper *exec.Cmd
	// The outer test's cleanup runs after the subtest's, which removes the
	// host while sleep still runs inside.
	t.Cleanup(func() {
		if sleeper != nil {
			_ = sleeper.Process.Kill()
			_ = sleeper.Wait()
		}
	})
	t.Run("host", func(t *testing.T) {
		h = New(t, "busy")
		sleeper = h.Command(context.Background(), "sleep", "30")
		if err := sleeper.Start(); err != nil {
			sleeper = nil
			t.Fatal(err)
		}
	})
	if h == nil {
		t.Fatal("host not made")
	}
	if left := Leftovers(h); left != "" {
		t.Errorf("left %s while a process was inside", left)
	}
}

func TestWithHosts(t *testing.T) {
	Require(t)
	before, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("10.203.255.254")
	file := HostsFile(t, map[string]netip.Addr{"bastion.test": want})
	h := New(t, "engineer")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	tests := []struct {
		name string
		run  func() ([]byte, error)
	}{
		{name: "root namespace", run: CommandWithHosts(ctx, file, "getent", "ahostsv4", "bastion.test").CombinedOutput},
		{name: "inside a host", run: h.CommandWithHosts(ctx, file, "getent", "ahostsv4", "bastion.test").CombinedOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.run()
			if err != nil || !strings.HasPrefix(string(out), want.String()+" ") {
				t.Fatalf("getent ahostsv4 bastion.test: %v %q, want %s", err, out, want)
			}
		})
	}
	after, err := os.ReadFile("/etc/hosts")
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("/etc/hosts changed: %v\nbefore:\n%s\nafter:\n%s", err, before, after)
	}
	if out, err := exec.CommandContext(ctx, "getent", "ahostsv4", "bastion.test").CombinedOutput(); err == nil {
		t.Fatalf("bastion.test resolves outside the helper: %s", out)
	}
}

// TestParallelHosts makes hosts from parallel subtests: each gets its own
// namespace and subnet of Range.
func TestParallelHosts(t *testing.T) {
	Require(t)
	var mu sync.Mutex
	seen := map[netip.Prefix]string{}
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 6; i++ {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				h := New(t, fmt.Sprint("p", i))
				if !Range().Contains(h.HostAddr) || !Range().Contains(h.Addr) || h.Subnet().Bits() != 30 {
					t.Errorf("host %s: %s and %s, want a /30 of %s", h, h.HostAddr, h.Addr, Range())
				}
				mu.Lock()
				defer mu.Unlock()
				if other, ok := seen[h.Subnet()]; ok {
					t.Errorf("subnet %s given to %s and %s", h.Subnet(), other, h.Name)
				}
				seen[h.Subnet()] = h.Name
			})
		}
	})
	if len(seen) != 6 {
		t.Fatalf("%d distinct subnets, want 6", len(seen))
	}
}

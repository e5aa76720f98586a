// Package netnstest makes separate hosts on one machine for tests: each Host
// is a network namespace with its own address, joined to the root namespace
// by a veth pair, so that a process in the root namespace (the bastion)
// dials a non-loopback address and sees a real source address.
//
// Everything New makes (the namespace, the veth pair and with them its
// addresses and routes) is deleted in t.Cleanup, and the cleanup checks
// that nothing is left. New changes no sysctl and adds no route to the
// root namespace beyond the connected route of the veth's /30, which goes
// with the veth.
//
// A Host's PrivateRoot adds a mount namespace inside it with a private
// copy of /etc, an empty /home and private overlays of /var, /usr/local
// and /run, so that tests run real useradd, userdel, visudo and sshd
// against account files of their own and leave the machine's untouched.
//
// Making namespaces needs root and iproute2's ip. Tests call Require (New
// does): without them a test skips with the reason, except with CI=true,
// where it fails.
package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// opTimeout bounds each ip command, so a wedged one fails the test.
const opTimeout = 10 * time.Second

// claimAttempts bounds how many random subnets New tries before giving up.
const claimAttempts = 20

// rangeText is the private range test hosts take their /30 from: in
// 10.0.0.0/8 and used by nothing else of the project.
const rangeText = "10.203.0.0/16"

// Range is the private range (10.203.0.0/16) test hosts take their /30
// from, and the one destination a host routes to the root namespace.
func Range() netip.Prefix { return netip.MustParsePrefix(rangeText) }

// Host is one test host: a network namespace with one veth end inside.
type Host struct {
	// Label is the test's name for the host (e.g. "db1").
	Label string
	// Name is the network namespace's name, unique on the machine while the
	// test runs ("jit" and four hex digits naming its subnet).
	Name string
	// Addr is the namespace's own address; processes in the root namespace
	// reach the host at Addr.
	Addr netip.Addr
	// HostAddr is the root namespace's end of the veth pair: the source
	// address of connections from the root namespace to Addr, and the
	// namespace's gateway to Range: through it the namespace reaches the
	// root namespace's addresses in Range (another host's HostAddr), and
	// nothing else, so a stray lookup (DNS) fails at once instead of
	// leaving the test's hosts. New enables no forwarding.
	HostAddr netip.Addr
	// Link is the root-side veth interface; Peer is the one inside.
	Link, Peer string
}

// Require skips the test unless ip and unshare are on PATH and the test
// runs as root. With CI=true it fails instead.
func Require(t testing.TB) {
	t.Helper()
	for _, name := range []string{"ip", "unshare", "mount"} {
		if _, err := exec.LookPath(name); err != nil {
			missing(t, fmt.Sprintf("netnstest: %s not found in $PATH; install it with: apt-get install iproute2 util-linux mount", name))
		}
	}
	if os.Geteuid() != 0 {
		missing(t, fmt.Sprintf("netnstest: network namespaces need root; running as uid %d", os.Geteuid()))
	}
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// New makes a host for label: a fresh namespace, a veth pair with one end
// inside, a /30 from Range (HostAddr .1 outside, Addr .2 inside), loopback
// and the veth up, and a route inside to Range via HostAddr. It fails the
// test on any error and deletes everything in t.Cleanup, then fails the
// test if the namespace or the veth is still there.
func New(t testing.TB, label string) *Host {
	t.Helper()
	Require(t)
	for attempt := 0; attempt < claimAttempts; attempt++ {
		h, err := claim(label)
		if errors.Is(err, errTaken) {
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), "Operation not permitted") {
				missing(t, "netnstest: "+err.Error())
			}
			t.Fatalf("netnstest: %v", err)
		}
		t.Cleanup(func() { h.remove(t) })
		if err := h.setUp(); err != nil {
			t.Fatalf("netnstest: host %s (%s): %v", label, h.Name, err)
		}
		return h
	}
	t.Fatalf("netnstest: no free subnet of %s after %d attempts", rangeText, claimAttempts)
	return nil
}

// errTaken says a subnet is in use, by another test or anything else.
var errTaken = errors.New("subnet taken")

// claim picks a random /30 of Range and claims it by making the namespace
// named after it: `ip netns add` refuses a name that exists, so two tests,
// even in different processes, never get the same subnet. A subnet that an
// interface of the root namespace already uses is given back.
func claim(label string) (*Host, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random subnet: %w", err)
	}
	n := binary.BigEndian.Uint16(b[:]) &^ 3 // the /30's first address within the /16
	base := Range().Addr().As4()
	base[2], base[3] = byte(n>>8), byte(n)
	suffix := fmt.Sprintf("%04x", n)
	h := &Host{
		Label: label, Name: "jit" + suffix, Link: "jh" + suffix, Peer: "jn" + suffix,
		HostAddr: netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + 1}),
		Addr:     netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + 2}),
	}
	if out, err := ip("netns", "add", h.Name); err != nil {
		if strings.Contains(out, "File exists") {
			return nil, errTaken
		}
		return nil, fmt.Errorf("ip netns add %s: %w: %s", h.Name, err, out)
	}
	used, err := ip("-o", "addr", "show", "to", h.Subnet().String())
	if err != nil || strings.TrimSpace(used) != "" {
		if out, derr := ip("netns", "del", h.Name); derr != nil {
			return nil, fmt.Errorf("give back namespace %s: %w: %s", h.Name, derr, out)
		}
		if err != nil {
			return nil, fmt.Errorf("ip addr show to %s: %w: %s", h.Subnet(), err, used)
		}
		return nil, errTaken
	}
	return h, nil
}

// Subnet is the /30 of h's two addresses.
func (h *Host) Subnet() netip.Prefix {
	return netip.PrefixFrom(h.HostAddr, 30).Masked()
}

// setUp makes the veth pair, moves one end in and brings both up.
func (h *Host) setUp() error {
	inside := func(args ...string) []string { return append([]string{"netns", "exec", h.Name, "ip"}, args...) }
	steps := [][]string{
		{"link", "add", h.Link, "type", "veth", "peer", "name", h.Peer},
		{"link", "set", h.Peer, "netns", h.Name},
		{"addr", "add", h.HostAddr.String() + "/30", "dev", h.Link},
		{"link", "set", h.Link, "up"},
		inside("link", "set", "lo", "up"),
		inside("addr", "add", h.Addr.String()+"/30", "dev", h.Peer),
		inside("link", "set", h.Peer, "up"),
		inside("route", "add", rangeText, "via", h.HostAddr.String()),
	}
	for _, s := range steps {
		if out, err := ip(s...); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

// remove deletes the veth (both ends, its addresses and its route) and the
// namespace, then fails t if either is still listed. Deleting the veth
// first matters: a process still inside keeps the namespace, and the veth
// in it, alive after `ip netns del`.
func (h *Host) remove(t testing.TB) {
	t.Helper()
	if out, err := ip("link", "del", h.Link); err != nil && !strings.Contains(out, "Cannot find device") {
		t.Errorf("netnstest: ip link del %s: %v: %s", h.Link, err, out)
	}
	if out, err := ip("netns", "del", h.Name); err != nil {
		t.Errorf("netnstest: ip netns del %s: %v: %s", h.Name, err, out)
	}
	if left := Leftovers(h); left != "" {
		t.Errorf("netnstest: host %s left behind: %s", h.Label, left)
	}
}

// Leftovers says what of h is still on the machine (its namespace, its
// root-side veth, an address of its subnet), or "" when nothing is.
func Leftovers(h *Host) string {
	var left []string
	if out, err := ip("netns", "list"); err != nil || namespaceListed(out, h.Name) {
		left = append(left, "namespace "+h.Name)
	}
	if _, err := ip("link", "show", "dev", h.Link); err == nil {
		left = append(left, "link "+h.Link)
	}
	if out, err := ip("-o", "addr", "show", "to", h.Subnet().String()); err != nil || strings.TrimSpace(out) != "" {
		left = append(left, "an address of "+h.Subnet().String())
	}
	return strings.Join(left, ", ")
}

// namespaceListed reports whether `ip netns list` output names ns; each
// line is "NAME" or "NAME (id: N)".
func namespaceListed(out, ns string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ns {
			return true
		}
	}
	return false
}

// Argv is the command line that runs name with args inside h's namespace.
func (h *Host) Argv(name string, args ...string) []string {
	return append([]string{ipPath(), "netns", "exec", h.Name, name}, args...)
}

// Command returns the command that runs name with args inside h's
// namespace through `ip netns exec`, which execs it: the process's pid is
// the command's own, so signalling it signals the command.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := h.Argv(name, args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// ip runs ip with args, bounded by opTimeout, and returns its combined
// output.
func ip(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, ipPath(), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func ipPath() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	return "ip"
}

package bastion

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/testkit"
)

// dialBastion logs in to the bastion with the engineer's certificate and
// returns the client and the host certificate the bastion presented.
func (e *env) dialBastion(t *testing.T, key ssh.Signer, cert *ssh.Certificate, user string) (*ssh.Client, *ssh.Certificate) {
	t.Helper()
	cs, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	var host *ssh.Certificate
	c, err := ssh.Dial("tcp", "127.0.0.1:"+strconv.Itoa(e.port), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(cs)}, Timeout: 10 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			host, _ = k.(*ssh.Certificate)
			return nil
		},
	})
	if err != nil {
		t.Fatalf("dial bastion: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, host
}

// A new host certificate set while a session runs is presented to the next
// connection, and the session already open carries on.
func TestSetHostSignerSwapsForNewConnections(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, key, cert := e.userCert(t, certSpec{name: "swap", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	user := e.login + "@db1"
	c1, host1 := e.dialBastion(t, key, cert, user)
	sess, err := c1.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("cat"); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(stdout)
	echo := func(s string) {
		t.Helper()
		if _, err := io.WriteString(stdin, s+"\n"); err != nil {
			t.Fatalf("write to the session: %v", err)
		}
		got, err := lines.ReadString('\n')
		if err != nil || got != s+"\n" {
			t.Fatalf("session echoed %q, %v; want %q", got, err, s)
		}
	}
	echo("before")

	serial, err := ca.NewSerial(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SetHostSigner(hostCertSigner(t, e.hostCA, serial, "127.0.0.1", "bastion")); err != nil {
		t.Fatalf("SetHostSigner: %v", err)
	}
	_, host2 := e.dialBastion(t, key, cert, user)
	if host1.Serial == serial || host2.Serial != serial {
		t.Fatalf("host certificate serials %d then %d, want the new %d on the second connection", host1.Serial, host2.Serial, serial)
	}
	echo("after")
	stdin.Close()
	if err := sess.Wait(); err != nil {
		t.Errorf("the session open across the swap ended with %v", err)
	}
}

func TestSetHostSignerRefuses(t *testing.T) {
	e := newEnv(t, envOptions{})
	rsaCert := func() ssh.Signer {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key, err := ssh.NewSignerFromKey(rk)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		c, err := ca.SignHostCert(e.hostCA, ca.HostCertSpec{Key: key.PublicKey(), Serial: 9, KeyID: "host:rsa", Principals: []string{"bastion"},
			ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := ca.HostCertSigner(key, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		signer ssh.Signer
		want   string
	}{
		{"plain key", testkit.Signer(t), "must hold a host certificate"},
		{"another algorithm", rsaCert(), "differs from the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.srv.SetHostSigner(tc.signer); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SetHostSigner = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// Without EgressAddresses the source-address of a target certificate is the
// local address of the route to the target, one address wide; with them, they.
func TestEgressDefault(t *testing.T) {
	cases := []struct{ target, want string }{
		{"127.0.0.1:22", "127.0.0.1/32"},
		{"127.0.0.2:22", "127.0.0.1/32"},
	}
	if c, err := net.Dial("udp", "[::1]:22"); err == nil {
		c.Close()
		cases = append(cases, struct{ target, want string }{"[::1]:22", "::1/128"})
	}
	// An address of this machine that is not loopback is reached from
	// itself; the old default left such targets unrestricted.
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				cases = append(cases, struct{ target, want string }{net.JoinHostPort(n.IP.String(), "22"), n.IP.String() + "/32"})
				break
			}
		}
	}
	s := &Server{log: slog.New(slog.DiscardHandler)}
	for _, tc := range cases {
		if got := s.egressFor(tc.target); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("egressFor(%s) = %q, want %q", tc.target, got, tc.want)
		}
	}
	s.cfg.EgressAddresses = []string{"198.51.100.0/24"}
	if got := s.egressFor("127.0.0.1:22"); !slices.Equal(got, s.cfg.EgressAddresses) {
		t.Errorf("with EgressAddresses egressFor = %q", got)
	}

	// Through a session: the minted certificate carries it.
	e := newEnv(t, envOptions{})
	path, _, _ := e.userCert(t, certSpec{name: "egress", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	if out, errOut, code := run(t, e.ssh(path, e.login+"@db1", "echo egress-ok"), ""); code != 0 || out != "egress-ok\n" {
		t.Fatalf("session: code %d, %q, %q", code, out, errOut)
	}
	e.backend.mu.Lock()
	defer e.backend.mu.Unlock()
	host, _, _ := net.SplitHostPort(e.target.Addr)
	if len(e.backend.minted) != 1 || !slices.Equal(e.backend.minted[0].SourceAddresses, []string{host + "/32"}) {
		t.Errorf("minted %+v, want source-address %s/32", e.backend.minted, host)
	}
}

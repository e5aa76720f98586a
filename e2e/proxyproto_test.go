package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// haproxyConfig is HAProxy in TCP mode in front of jitd's API and bastion,
// sending a PROXY protocol v2 header on every connection it forwards.
const haproxyConfig = `global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 2m
    timeout server 2m
frontend api
    bind 127.0.0.1:%[1]s
    default_backend jitd_api
backend jitd_api
    server jitd %[2]s send-proxy-v2
frontend bastion
    bind 127.0.0.1:%[3]s
    default_backend jitd_bastion
backend jitd_bastion
    server jitd %[4]s send-proxy-v2
`

// startHAProxy runs Debian's haproxy as this (unprivileged to it) process's
// user, in the foreground, forwarding 127.0.0.1:apiPort to api and
// 127.0.0.1:bastionPort to bastion; it is stopped when t ends.
func startHAProxy(t *testing.T, apiPort, api, bastionPort, bastion string) {
	t.Helper()
	path, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr == nil {
			path = "/usr/sbin/haproxy"
		} else {
			path = secRequire(t, "haproxy", "haproxy")
		}
	}
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, apiPort, api, bastionPort, bastion), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "-db", "-f", cfg)
	log := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("haproxy log:\n%s", log)
		}
	})
	testkit.WaitFor(t, daemonStartTimeout, "haproxy listening", func() bool {
		select {
		case <-done:
			t.Fatalf("haproxy exited: %v\n%s", cmd.ProcessState, log)
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+bastionPort, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// relayFrom listens on 127.0.0.1 and relays each connection to to from the
// local address from, so a client that cannot choose its source address
// (jit) reaches to as from. It returns the address to dial.
func relayFrom(t *testing.T, from, to string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			track(in)
			out, err := (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).Dial("tcp", to)
			if err != nil {
				in.Close()
				continue
			}
			track(out)
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); _, _ = io.Copy(in, out); in.(*net.TCPConn).CloseWrite() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// auditEvents runs `jit audit list --format json` as e with args.
func auditEvents(t *testing.T, e *engineer, args ...string) []api.Event {
	t.Helper()
	out := mustRun(t, e, append([]string{"audit", "list", "--format", "json"}, args...)...)
	var evs []api.Event
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var ev api.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit list line %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestProxyProtocolThroughHAProxy puts a real HAProxy with send-proxy-v2
// in front of jitd's API and bastion (--proxy-protocol-from 127.0.0.1/32,
// HAProxy's address): a login and a bastion session from 127.0.0.7, which
// only ever reaches HAProxy, are audited with 127.0.0.7; a client from
// outside the balancers' CIDR (127.0.0.8) keeps its own address; and a
// connection straight from 127.0.0.1 without a header is refused and
// counted.
func TestProxyProtocolThroughHAProxy(t *testing.T) {
	t.Parallel()
	w := newSecWorldStopped(t)
	haAPI, haBastion, metricsPort := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	w.serve(t, "--public-addr", "127.0.0.1:"+haBastion, "--proxy-protocol-from", "127.0.0.1/32", "--metrics", "127.0.0.1:"+metricsPort)
	startHAProxy(t, haAPI, w.d.API, haBastion, w.d.Bastion)
	loginVia := func(e *engineer, addr string) {
		mustRun(t, e, "login", "--ca", "https://"+addr, "--fingerprint", w.d.Fingerprint, "--user", e.Name, "-i", e.Key)
	}
	loginVia(w.alice, relayFrom(t, "127.0.0.7", "127.0.0.1:"+haAPI))
	loginVia(w.bob, relayFrom(t, "127.0.0.8", w.d.API))
	loginVia(w.auditor, "127.0.0.1:"+haAPI)

	t.Run("login audited with the client's address", func(t *testing.T) {
		for _, tc := range []struct{ user, want string }{{"alice", "127.0.0.7"}, {"bob", "127.0.0.8"}, {"auditor", "127.0.0.1"}} {
			evs := auditEvents(t, w.auditor, "--event", "login", "--user", tc.user)
			if len(evs) == 0 || evs[len(evs)-1].ClientAddr != tc.want {
				t.Errorf("login events of %s: %+v, want the last from %s", tc.user, evs, tc.want)
			}
		}
	})

	t.Run("bastion session audited with the client's address", func(t *testing.T) {
		// jit ssh gets the grant (through HAProxy from 127.0.0.1); stock
		// ssh then uses it from 127.0.0.7.
		if r := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "check the disk space", "--", "echo warm-up").wait(t, commandTimeout); r.Code != 0 {
			t.Fatalf("jit ssh through HAProxy: %v", r)
		}
		hostCA, err := os.ReadFile(filepath.Join(w.d.Data, "ca", "host_ca.pub"))
		if err != nil {
			t.Fatal(err)
		}
		kh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(kh, []byte("@cert-authority jitssh-bastion "+string(hostCA)), 0o600); err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(w.alice.Home, "state", "keys", w.login+"@db1")
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, sshdtest.Path("ssh"), "-F", "none", "-o", "BatchMode=yes", "-o", "BindAddress=127.0.0.7",
			"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "HostKeyAlias=jitssh-bastion", "-o", "IdentitiesOnly=yes", "-i", key, "-o", "CertificateFile="+key+"-cert.pub",
			"-p", haBastion, "-l", w.login+"@db1", "127.0.0.1", "echo via-haproxy")
		cmd.Env = w.alice.env()
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "via-haproxy") {
			t.Fatalf("ssh -o BindAddress=127.0.0.7 through HAProxy: %v\n%s", err, out)
		}
		s := secSessionWith(t, w.auditor, "via-haproxy", sessionWait)
		if host, _, _ := net.SplitHostPort(s.ClientAddr); host != "127.0.0.7" {
			t.Errorf("session %s client address %q, want 127.0.0.7", s.ID, s.ClientAddr)
		}
		var seen bool
		for _, ev := range auditEvents(t, w.auditor, "--user", "alice") {
			if ev.SessionID == s.ID && ev.ClientAddr != "" {
				seen = true
				if host, _, _ := net.SplitHostPort(ev.ClientAddr); host != "127.0.0.7" {
					t.Errorf("audit event %s of session %s from %q, want 127.0.0.7", ev.Event, s.ID, ev.ClientAddr)
				}
			}
		}
		if !seen {
			t.Errorf("no audit event of session %s carries a client address", s.ID)
		}
	})

	t.Run("direct connection from the balancer's address refused", func(t *testing.T) {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
		c, err := tls.DialWithDialer(d, "tcp", w.d.API, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // refused before any certificate
		if err == nil {
			c.Close()
			t.Errorf("a TLS handshake straight to the API from 127.0.0.1 without a header succeeded")
		}
		raw, err := d.Dial("tcp", w.d.Bastion)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		_, _ = raw.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
		_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
		// Closed (EOF, or a reset for the bytes it never read), not timed out.
		if b, err := io.ReadAll(raw); len(b) != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("bastion straight from 127.0.0.1 without a header: read %q, %v; want it closed with nothing sent", b, err)
		}
		want := regexp.MustCompile(`(?m)^jitssh_proxy_protocol_refused_total\{listener="(api|bastion)",reason="missing"\} [1-9]`)
		testkit.WaitFor(t, 10*time.Second, "both refusals counted", func() bool {
			m := want.FindAllStringSubmatch(scrape(t, "http://127.0.0.1:"+metricsPort+"/metrics"), -1)
			return len(m) == 2
		})
		// Two refusals within a minute: one line in jitd's log, and none
		// from the API server's own TLS handshake errors.
		log := w.d.log.String()
		if n := strings.Count(log, "connection from a PROXY protocol balancer refused"); n != 1 || strings.Contains(log, "TLS handshake error") {
			t.Errorf("jitd logged the refusal %d times (want 1) or a TLS handshake error:\n%s", n, log)
		}
	})
}

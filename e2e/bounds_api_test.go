package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"

	"github.com/jitssh/jitssh/api"
)

// dialAPI opens a TLS connection to the API. The test checks bounds, not
// the pin, so it does not verify the certificate.
func dialAPI(t *testing.T, addr string) *tls.Conn {
	t.Helper()
	return dialAPIFrom(t, addr, "")
}

// dialAPIFrom is dialAPI from the local address from (e.g. 127.0.0.3),
// empty for any: the API caps connections per address too.
func dialAPIFrom(t *testing.T, addr, from string) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a test of bounds
	if err != nil {
		t.Fatalf("dial API %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAPISlowBodyCut sends a request body one byte a second (slowloris):
// the read timeout ends the connection instead of holding it open for as
// long as the client likes.
func TestAPISlowBodyCut(t *testing.T) {
	t.Parallel()
	const readTimeout, bodyLen = 2 * time.Second, 60
	d := startDaemon(t, renderPolicy(t, boundsPolicy, "deploy", []*engineer{newEngineer(t, "alice"), newEngineer(t, "carol"), newEngineer(t, "auditor")}, nil),
		"--api-read-timeout", readTimeout.String())
	c := dialAPI(t, d.API)
	start := time.Now()
	fmt.Fprintf(c, "POST /v1/login/challenge HTTP/1.1\r\nHost: jitd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", bodyLen)
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(closed)
	}()
	for i := 0; ; i++ {
		select {
		case <-closed:
			took := time.Since(start)
			if took > readTimeout+boundsSlack {
				t.Errorf("slow body cut after %v, want within %v of the %v read timeout", took, boundsSlack, readTimeout)
			}
			t.Logf("slow body (1 byte/s) cut after %v and %d bytes; read timeout %v", took, i, readTimeout)
			return
		case <-time.After(time.Second):
		}
		if i == bodyLen-1 || time.Since(start) > readTimeout+boundsSlack {
			t.Fatalf("slow body still being read after %v and %d bytes; read timeout %v", time.Since(start), i, readTimeout)
		}
		if _, err := c.Write([]byte(" ")); err != nil {
			<-closed
			t.Logf("slow body cut after %v and %d bytes (write failed: %v)", time.Since(start), i, err)
			return
		}
	}
}

// postChallenge sends one raw login challenge and returns the answer.
func postChallenge(t *testing.T, d *daemon) (*http.Response, api.ErrorBody) {
	t.Helper()
	c := dialAPI(t, d.API)
	fmt.Fprintf(c, "POST /v1/login/challenge HTTP/1.1\r\nHost: jitd\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"user\":\"alice\"}")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read challenge answer: %v", err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &eb)
	return resp, eb
}

// TestAPIRateLimits goes over the login limit per address and the request
// limit per user: 429 rate_limited with Retry-After, jit saying when to
// retry, and one audit record per period however many calls were refused.
func TestAPIRateLimits(t *testing.T) {
	t.Parallel()
	alice, carol, auditor := newEngineer(t, "alice"), newEngineer(t, "carol"), newEngineer(t, "auditor")
	d := startDaemon(t, renderPolicy(t, boundsPolicy, "deploy", []*engineer{alice, carol, auditor}, nil),
		"--login-rate", "3/1m", "--request-rate", "2/1m")
	for _, e := range []*engineer{auditor, alice, carol} {
		d.login(t, e)
	}

	t.Run("login per address", func(t *testing.T) {
		_, stderr, code := run(t, alice, "login", "--ca", "https://"+d.API, "--fingerprint", d.Fingerprint, "--user", alice.Name, "-i", alice.Key)
		if code != 1 || !strings.Contains(stderr, "rate_limited") || !regexp.MustCompile(`jit: hint: .*try again in [1-9][0-9]*s`).MatchString(stderr) {
			t.Errorf("jit login over the limit: exit %d, stderr %q; want 1 and a rate_limited message with the retry time", code, stderr)
		}
		for range 3 {
			resp, eb := postChallenge(t, d)
			ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if resp.StatusCode != http.StatusTooManyRequests || eb.Error.Code != api.CodeRateLimited || err != nil || ra <= 0 || ra > 60 {
				t.Errorf("challenge over the limit: %d %+v Retry-After %q; want 429 rate_limited and 1..60 s", resp.StatusCode, eb, resp.Header.Get("Retry-After"))
			}
		}
	})

	t.Run("requests per user", func(t *testing.T) {
		for i := range 2 {
			mustRun(t, alice, "request", "db1", "--login", "deploy", "--reason", "deploy release 4"+strconv.Itoa(i), "--add-to-agent", "no")
		}
		_, stderr, code := run(t, alice, "request", "db1", "--login", "deploy", "--reason", "deploy release 43", "--add-to-agent", "no")
		if code != 1 || !strings.Contains(stderr, "rate_limited") || !regexp.MustCompile(`jit: hint: .*try again in [1-9][0-9]*s`).MatchString(stderr) {
			t.Errorf("third request in a minute: exit %d, stderr %q; want 1 and a rate_limited message with the retry time", code, stderr)
		}
		_, _, _ = run(t, alice, "request", "db1", "--login", "deploy", "--reason", "deploy release 44", "--add-to-agent", "no")
	})

	t.Run("refusals audited once per period", func(t *testing.T) {
		evs := auditList(t, auditor, "--event", "ratelimit.refused")
		var logins, requests int
		for _, ev := range evs {
			switch {
			case strings.Contains(ev.Message, "login challenges"):
				logins++
			case strings.Contains(ev.Message, "requests from alice"):
				requests++
			}
		}
		if logins != 1 || requests != 1 {
			t.Errorf("ratelimit.refused events: %d for 4 refused challenges, %d for 2 refused requests; want 1 each:\n%+v", logins, requests, evs)
		}
	})
}

// TestAPIWaitsOutliveWriteTimeout runs the waits of jit against a daemon
// whose read and write timeouts are one second: jit request waiting for an
// approval and jit audit list --follow keep working well past them.
func TestAPIWaitsOutliveWriteTimeout(t *testing.T) {
	t.Parallel()
	alice, carol, auditor := newEngineer(t, "alice"), newEngineer(t, "carol"), newEngineer(t, "auditor")
	d := startDaemon(t, renderPolicy(t, boundsPolicy, "deploy", []*engineer{alice, carol, auditor}, nil),
		"--api-read-timeout", "1s", "--api-write-timeout", "1s")
	for _, e := range []*engineer{auditor, alice, carol} {
		d.login(t, e)
	}
	follow := start(t, auditor, "audit", "list", "--follow", "--format", "json", "--event", "request.approved")
	req := start(t, alice, "request", "db2", "--login", "deploy", "--reason", "schema change 7", "--add-to-agent", "no")
	var id string
	testkit.WaitFor(t, 10*time.Second, "jit request to print the pending request id", func() bool {
		id = requestIDPattern.FindString(req.stdout.String() + req.stderr.String())
		return id != "" || req.exited()
	})
	time.Sleep(3 * time.Second) // past both timeouts
	mustRun(t, carol, "approve", id)
	if r := req.wait(t, commandTimeout); r.Code != 0 {
		t.Errorf("jit request waiting 3s past a 1s write timeout: %v", r)
	}
	testkit.WaitFor(t, 10*time.Second, "the approval on jit audit list --follow", func() bool {
		return strings.Contains(follow.stdout.String(), id) || follow.exited()
	})
	if follow.exited() {
		t.Errorf("jit audit list --follow ended: %v", follow.wait(t, time.Second))
	}
}

// TestAPIConnectionCap holds as many connections as --api-max-conns allows:
// one more is not served (its TLS handshake waits) until one is closed.
func TestAPIConnectionCap(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, renderPolicy(t, boundsPolicy, "deploy", []*engineer{newEngineer(t, "alice"), newEngineer(t, "carol"), newEngineer(t, "auditor")}, nil),
		"--api-max-conns", "2")
	// From distinct loopback addresses: this is the cap in total, and one
	// address may hold only a quarter of it (TestAPIConnectionCapPerAddress).
	held := []*tls.Conn{dialAPIFrom(t, d.API, "127.0.0.2"), dialAPIFrom(t, d.API, "127.0.0.3")}
	raw, err := (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).Dial("tcp", d.API)
	if err != nil {
		t.Fatalf("dial API: %v", err)
	}
	defer raw.Close()
	third := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a test of bounds
	_ = raw.SetDeadline(time.Now().Add(time.Second))
	if err := third.Handshake(); err == nil {
		t.Fatalf("a third connection was served with --api-max-conns 2")
	}
	// The queued third connection takes the first free slot: close it too.
	raw.Close()
	held[0].Close()
	raw2, err := (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}).Dial("tcp", d.API)
	if err != nil {
		t.Fatalf("dial API: %v", err)
	}
	defer raw2.Close()
	_ = raw2.SetDeadline(time.Now().Add(boundsSlack))
	if err := tls.Client(raw2, &tls.Config{InsecureSkipVerify: true}).Handshake(); err != nil { //nolint:gosec // a test of bounds
		t.Errorf("no connection served after one of the two was closed: %v", err)
	}
}

// TestAPIConnectionCapPerAddress: one address holds at most a quarter of
// --api-max-conns; its next connection is closed at once while another
// address is still served.
func TestAPIConnectionCapPerAddress(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, renderPolicy(t, boundsPolicy, "deploy", []*engineer{newEngineer(t, "alice"), newEngineer(t, "carol"), newEngineer(t, "auditor")}, nil),
		"--api-max-conns", "8")
	dialAPIFrom(t, d.API, "127.0.0.6")
	dialAPIFrom(t, d.API, "127.0.0.6")
	raw, err := (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.6")}}).Dial("tcp", d.API)
	if err != nil {
		t.Fatalf("dial API: %v", err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(boundsSlack))
	if err := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}).Handshake(); err == nil { //nolint:gosec // a test of bounds
		t.Fatal("a third connection from one address was served with --api-max-conns 8 (2 per address)")
	}
	dialAPIFrom(t, d.API, "127.0.0.7") // another address still gets in
}

package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// boundsPolicy is the policy of the bounds tests: alice asks for db1 with a
// reason alone, and for db2 with carol's approval; auditor reads the trail.
const boundsPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  carol: {groups: [approvers], keys: [{{index .Key "carol"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
auditors: {groups: [secops]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
  db2: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: prod-db
    groups: [dev]
    hosts: {names: [db1]}
    logins: [deploy]
    justification: {min_length: 10}
  - name: prod-db-approved
    groups: [dev]
    hosts: {names: [db2]}
    logins: [deploy]
    justification: {min_length: 10}
    approval: {approvers: [approvers], count: 1}
`

// boundsSlack is what a bound may be late by on a loaded test machine.
const boundsSlack = 5 * time.Second

// holdBanner opens a TCP connection to addr that sends nothing, and reads
// the server's SSH banner; it returns the connection and the banner line
// (empty if the server closed without one).
func holdBanner(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial bastion %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(boundsSlack))
	line, _ := bufio.NewReader(c).ReadString('\n')
	_ = c.SetReadDeadline(time.Time{})
	return c, line
}

// closedWithin reads c until the server closes it and returns how long
// that took, failing the test if it is still open after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return took
}

// TestBastionUnauthenticatedBounds holds connections to the bastion as an
// attacker would, connecting and sending nothing: each is closed at the
// auth deadline, and beyond the per-address cap a connection is closed at
// accept, without a banner, and the refusals are logged once, not once each.
func TestBastionUnauthenticatedBounds(t *testing.T) {
	t.Parallel()
	const authTimeout, perAddr = 3 * time.Second, 16
	alice := newEngineer(t, "alice")
	d := startDaemon(t, renderPolicy(t, boundsPolicy, "deploy", []*engineer{alice, newEngineer(t, "carol"), newEngineer(t, "auditor")}, nil),
		"--bastion", "127.0.0.1:0", "--bastion-auth-timeout", authTimeout.String(), "--bastion-max-unauth-per-addr", "16", "--metrics", "127.0.0.1:0")

	t.Run("half-open connection closed at the auth deadline", func(t *testing.T) {
		c, banner := holdBanner(t, d.Bastion)
		if !strings.HasPrefix(banner, "SSH-2.0-") {
			t.Fatalf("bastion banner %q, want SSH-2.0-...", banner)
		}
		took := closedWithin(t, c, authTimeout+boundsSlack)
		if took < authTimeout-time.Second {
			t.Errorf("silent connection closed after %v, before the %v deadline", took, authTimeout)
		}
		t.Logf("silent connection closed %v after the banner (deadline %v)", took, authTimeout)
	})

	t.Run("per-address cap refuses the 17th", func(t *testing.T) {
		held := make([]net.Conn, 0, perAddr)
		for i := range perAddr {
			c, banner := holdBanner(t, d.Bastion)
			if !strings.HasPrefix(banner, "SSH-2.0-") {
				t.Fatalf("connection %d of %d: banner %q, want SSH-2.0-... (under the cap)", i+1, perAddr, banner)
			}
			held = append(held, c)
		}
		for i := range 5 {
			c, banner := holdBanner(t, d.Bastion)
			if banner != "" {
				t.Fatalf("connection %d over the cap of %d got banner %q, want it closed at accept", perAddr+1+i, perAddr, banner)
			}
			closedWithin(t, c, time.Second)
		}
		if n := strings.Count(d.log.String(), "unauthenticated connections refused over the cap"); n != 1 {
			t.Errorf("%d log lines for 5 refused connections, want 1 per interval:\n%s", n, d.log)
		}
		if m := metric(t, d, "jitssh_bastion_refused_connections_total"); m != "5" {
			t.Errorf("jitssh_bastion_refused_connections_total %q after 5 refusals, want 5", m)
		}
		held[0].Close()
		testkit.WaitFor(t, boundsSlack, "a slot freed by a closed connection to be reused", func() bool {
			c, banner := holdBanner(t, d.Bastion)
			c.Close()
			return strings.HasPrefix(banner, "SSH-2.0-")
		})
	})
}

// metric scrapes d's --metrics address (from its serving line) and returns
// the value of the unlabelled sample name.
func metric(t *testing.T, d *daemon, name string) string {
	t.Helper()
	m := regexp.MustCompile(`msg="jitd serving".* metrics=(\S+)`).FindStringSubmatch(d.log.String())
	if m == nil {
		t.Fatalf("no metrics address in the serving line:\n%s", d.log)
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no %s in metrics:\n%s", name, body)
	return ""
}

package e2e

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// idemPolicy lets alice have deploy@web1 at once: a lost answer would be a
// lost certificate.
const idemPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
auditors: {groups: [secops]}
hosts:
  web1: {address: "127.0.0.1:22", labels: {env: staging}}
roles:
  - name: staging
    groups: [dev]
    hosts: {names: [web1]}
    logins: [deploy]
`

// cutProxy forwards TCP to target. On its first connection it forwards
// the server's bytes only until lost() holds (the daemon has committed the
// answer it is about to send), then swallows them and cuts the
// connection: the client's request was served, its answer lost.
type cutProxy struct {
	ln     net.Listener
	target string
	lost   func() bool
	conns  atomic.Int32
	wg     sync.WaitGroup
}

func startCutProxy(t *testing.T, target string, lost func() bool) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, lost: lost}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		n := p.conns.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c, n == 1)
		}()
	}
}

func (p *cutProxy) serve(c net.Conn, cut bool) {
	defer c.Close()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	deadline := time.Now().Add(commandTimeout)
	_ = c.SetDeadline(deadline)
	_ = s.SetDeadline(deadline)
	go func() {
		_, _ = io.Copy(s, c)
		_ = s.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if cut && p.lost() {
				return // the answer is dropped, both sides closed
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestRequestRetryAfterLostAnswer drops the daemon's answer to jit
// request's POST after the certificate was issued: jit retries with its
// Idempotency-Key and gets the same request and certificate, and the audit
// trail holds one request and one cert.issued.
func TestRequestRetryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	alice, auditor := newEngineer(t, "alice"), newEngineer(t, "auditor")
	d := startDaemon(t, renderPolicy(t, idemPolicy, "deploy", []*engineer{alice, auditor}, nil))
	d.login(t, alice)
	d.login(t, auditor)

	jit := bin(t, "jit")
	issued := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, jit, "audit", "list", "--format", "json", "--event", "cert.issued")
		cmd.Env = auditor.env()
		out, err := cmd.Output()
		return err == nil && strings.Contains(string(out), `"cert.issued"`)
	}
	p := startCutProxy(t, d.API, issued)
	alice.ExtraEnv = []string{"JIT_ADDR=https://" + p.ln.Addr().String()}

	r := start(t, alice, "request", "deploy@web1", "--reason", "deploy release 42", "--add-to-agent", "no", "--format", "json").wait(t, commandTimeout)
	if r.Code != 0 {
		t.Fatalf("jit request through a proxy that lost the answer: %v", r)
	}
	if n := p.conns.Load(); n < 2 {
		t.Fatalf("proxy saw %d connections; the answer was never lost and retried", n)
	}
	g := parseGrant(t, r.Stdout)

	evs := auditList(t, auditor)
	var certs, created []string
	for _, ev := range evs {
		switch ev.Event {
		case "cert.issued":
			certs = append(certs, ev.Serial)
		case "request.created":
			created = append(created, ev.RequestID)
		}
	}
	if len(certs) != 1 || len(created) != 1 || certs[0] != g.Serial {
		t.Fatalf("cert.issued %v, request.created %v; want one of each, serial %s", certs, created, g.Serial)
	}
	if created[0] != g.Request.ID {
		t.Fatalf("jit printed request %s, the daemon made %s", g.Request.ID, created[0])
	}
	if !exists(g.CertificateFile) {
		t.Fatalf("certificate %s not stored", g.CertificateFile)
	}
}

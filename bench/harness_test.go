package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/daemon"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/ratelimit"
)

// benchUser is the engineer the benchmarks log in as.
const benchUser = "bencher"

// stopWait bounds how long a benchmark waits for the daemon to shut down.
const stopWait = 30 * time.Second

// benchLimits lift the rate limits and caps that guard jitd against
// clients: the benchmarks are one user on one address, asking for
// thousands of certificates a minute from hundreds of connections.
func benchLimits() daemon.Limits {
	return daemon.Limits{
		Login:                   ratelimit.Limit{Events: 1 << 20, Per: time.Minute},
		Requests:                ratelimit.Limit{Events: 1 << 20, Per: time.Minute},
		APIMaxConns:             4096,
		BastionMaxUnauth:        4096,
		BastionMaxUnauthPerAddr: 4096,
	}
}

// benchHost is one target in the benchmark policy.
type benchHost struct {
	name, addr string
}

// daemonEnv is an in-process jitd with one enrolled engineer.
type daemonEnv struct {
	dir    string
	addrs  daemon.Addrs
	keys   *ca.Keys
	user   ssh.Signer // the engineer's enrolled key
	d      *daemon.Daemon
	cancel context.CancelFunc
	done   chan error
}

// writePolicy writes dir/policy.yaml: one engineer with key, every host in
// hosts, and a role that lets the engineer in as login without approval.
func writePolicy(dir string, key ssh.PublicKey, login string, hosts []benchHost) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "users:\n  %s: {groups: [dev], keys: [%q]}\n", benchUser, ca.PublicKeyLine(key, benchUser))
	sb.WriteString("hosts:\n")
	for _, h := range hosts {
		fmt.Fprintf(&sb, "  %s: {address: %q, labels: {env: bench}}\n", h.name, h.addr)
	}
	fmt.Fprintf(&sb, `roles:
  - name: bench
    groups: [dev]
    hosts: {labels: {env: bench}}
    logins: [%s]
    ttl: 30m
    max_ttl: 1h
    justification: {min_length: 5}
`, login)
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(sb.String()), 0o600); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	return nil
}

// initDaemon initialises a data directory and enrols a fresh engineer key;
// run starts the daemon on it.
func initDaemon(b *testing.B) *daemonEnv {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "data")
	res, err := daemon.Init(context.Background(), dir, ca.Ed25519, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		b.Fatalf("daemon init: %v", err)
	}
	keys, err := ca.LoadKeys(filepath.Join(dir, "ca"))
	if err != nil {
		b.Fatalf("load CA keys: %v", err)
	}
	return &daemonEnv{dir: dir, keys: keys, user: testkit.Signer(b), addrs: daemon.Addrs{TLSFingerprint: res.TLSFingerprint}}
}

// startDaemon initialises a data directory, writes the benchmark policy and
// runs the daemon in this process until the benchmark ends.
func startDaemon(b *testing.B, login string, hosts []benchHost) *daemonEnv {
	b.Helper()
	env := initDaemon(b)
	env.run(b, login, hosts)
	return env
}

// run writes the benchmark policy and runs the daemon in this process (API
// and bastion on 127.0.0.1:0) until the benchmark ends.
func (e *daemonEnv) run(b *testing.B, login string, hosts []benchHost) {
	b.Helper()
	if err := writePolicy(e.dir, e.user.PublicKey(), login, hosts); err != nil {
		b.Fatal(err)
	}
	d, err := daemon.New(context.Background(), daemon.Config{
		Dir: e.dir, APIAddr: "127.0.0.1:0", BastionAddr: "127.0.0.1:0",
		EgressAddresses: []string{"127.0.0.1/32"},
		Logger:          slog.New(slog.DiscardHandler),
		Limits:          benchLimits(),
	})
	if err != nil {
		b.Fatalf("daemon: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.d, e.cancel, e.done, e.addrs = d, cancel, make(chan error, 1), d.Addrs()
	go func() { e.done <- d.Serve(ctx) }()
	b.Cleanup(e.stop)
}

// stop cancels Serve, waits for it to return and closes the daemon.
func (e *daemonEnv) stop() {
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: daemon stopped with: %v\n", err)
		}
	case <-time.After(stopWait):
		fmt.Fprintln(os.Stderr, "bench: daemon did not stop within 30s")
		return
	}
	if err := e.d.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: daemon close: %v\n", err)
	}
}

// client returns an API client logged in as the engineer.
func (e *daemonEnv) client(b *testing.B) *api.Client {
	b.Helper()
	c, err := api.NewClient("https://"+e.addrs.API, e.addrs.TLSFingerprint, "")
	if err != nil {
		b.Fatalf("api client: %v", err)
	}
	b.Cleanup(c.Close)
	if _, err := c.Login(context.Background(), benchUser, e.user, 0); err != nil {
		b.Fatalf("login as %s: %v", benchUser, err)
	}
	return c
}

// percentile returns the p-th percentile (0..100) of ds by nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

// ms converts d to float milliseconds for ReportMetric.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package e2e

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/pgtest"
	"github.com/jitssh/jitssh/internal/s3test"
	"github.com/jitssh/jitssh/internal/sshdtest"
)

// balancer is a round-robin TCP load balancer on 127.0.0.1, in front of
// the replicas' API or bastion ports: plumbing between the real binaries,
// as an operator's haproxy or cloud load balancer would be. Each accepted
// connection is spliced to the next backend that accepts a connection (a
// killed replica refuses, so it drops out of rotation by itself, as behind
// a health-checking balancer); only restricts the rotation, as an operator
// takes servers out of it.
type balancer struct {
	l        net.Listener
	backends []string

	mu    sync.Mutex
	next  int
	only  []int // backends in rotation; nil: all
	conns map[net.Conn]struct{}
	dials []int // connections spliced to each backend
	wg    sync.WaitGroup
}

// startBalancer listens on 127.0.0.1:0 for backends until t ends.
func startBalancer(t testing.TB, backends []string) *balancer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("balancer listen: %v", err)
	}
	b := &balancer{l: l, backends: backends, conns: map[net.Conn]struct{}{}, dials: make([]int, len(backends))}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(b.close)
	return b
}

// Addr is the balancer's host:port.
func (b *balancer) Addr() string { return b.l.Addr().String() }

// use puts only the backends of the given indexes in rotation; none: all.
func (b *balancer) use(idx ...int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.only = idx
}

// spliced is how many connections backend i got so far.
func (b *balancer) spliced(i int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dials[i]
}

// order is the indexes of the backends to try for the next connection,
// rotated once.
func (b *balancer) order() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	idx := b.only
	if idx == nil {
		for i := range b.backends {
			idx = append(idx, i)
		}
	}
	b.next++
	out := make([]int, 0, len(idx))
	for k := range idx {
		out = append(out, idx[(b.next+k)%len(idx)])
	}
	return out
}

func (b *balancer) serve() {
	defer b.wg.Done()
	for {
		c, err := b.l.Accept()
		if err != nil {
			return
		}
		if !b.track(c, true) {
			c.Close()
			return
		}
		b.wg.Add(1)
		go b.splice(c)
	}
}

// track adds or removes c from the open connections; adding fails once
// the balancer is closed.
func (b *balancer) track(c net.Conn, add bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !add {
		delete(b.conns, c)
		return true
	}
	if b.conns == nil {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

// splice connects c to the first backend of the rotation that answers and
// copies both ways, passing on each side's half-close, until both end.
func (b *balancer) splice(c net.Conn) {
	defer b.wg.Done()
	defer b.track(c, false)
	defer c.Close()
	var up net.Conn
	for _, i := range b.order() {
		var err error
		if up, err = net.DialTimeout("tcp", b.backends[i], 2*time.Second); err == nil {
			b.mu.Lock()
			b.dials[i]++
			b.mu.Unlock()
			break
		}
	}
	if up == nil || !b.track(up, true) {
		return
	}
	defer b.track(up, false)
	defer up.Close()
	var both sync.WaitGroup
	both.Add(2)
	pipe := func(dst, src net.Conn) {
		defer both.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	both.Wait()
}

// close stops accepting, cuts every open connection and waits for the
// splicing goroutines.
func (b *balancer) close() {
	b.l.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	b.wg.Wait()
}

// replicaSet is three jitd serve processes on one PostgreSQL and one
// versitygw, none special, behind one balancer for the API and one for the
// bastion, with the people and targets of a secWorld (w.d is replica 0,
// whose data directory `jitd init` made; the others are copies of it made
// as docs/scale-out.md tells an operator).
type replicaSet struct {
	w        *secWorld
	dave     *engineer // a third engineer of the dev group
	pg       *pgtest.Server
	url      string
	s3       *s3test.Server
	r        []*daemon
	apiAddrs []string // fixed, so that a restarted replica is where the balancers expect it
	sshAddrs []string
	api, ssh *balancer
	policy   string
	// replicaFlags is whether this jitd has the replica part's
	// --replica-id and --advertise-url (issue 12, `replica`).
	replicaFlags bool
}

// replicaPolicy is secPolicy with a third engineer, dave, in dev.
var replicaPolicy = strings.Replace(secPolicy, "users:\n", "users:\n  dave: {groups: [dev], keys: [{{index .Key \"dave\"}}]}\n", 1)

// replicaFiles are what an operator copies from the first replica's data
// directory to every other: the CA keys (user, host, target), the
// checkpoint key, the API's TLS certificate and key, and the policy. Not
// the SQLite file, not the recordings spool, not the bastion host key
// (each replica certifies its own with the shared host CA at start), not
// a replica-id file.
var replicaFiles = []string{
	"ca/user_ca", "ca/user_ca.pub", "ca/host_ca", "ca/host_ca.pub", "ca/target_ca", "ca/target_ca.pub",
	"ca/checkpoint_key", "ca/checkpoint_key.pub", "tls/tls.crt", "tls/tls.key", "policy.yaml",
}

// newReplicaSet starts PostgreSQL, versitygw, the targets, three replicas
// and the balancers, and logs everyone in through the API balancer.
func newReplicaSet(t *testing.T) *replicaSet {
	t.Helper()
	rs := &replicaSet{pg: startPostgres(t), s3: s3test.Start(t), w: newSecWorldStopped(t), dave: newEngineer(t, "dave")}
	rs.url = rs.pg.Database(t)
	out, err := exec.Command(bin(t, "jitd"), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("jitd serve --help: %v\n%s", err, out)
	}
	rs.replicaFlags = strings.Contains(string(out), "--replica-id")
	// The first replica: jitd init on PostgreSQL (keys in its data
	// directory, the schema in the database).
	first := rs.w.d
	jitd(t, "init", "--data", first.Data, "--store", rs.url)
	rs.r = []*daemon{first}
	for i := 1; i < 3; i++ {
		rs.r = append(rs.r, copyReplica(t, first, rs.url))
	}
	for range rs.r {
		rs.apiAddrs = append(rs.apiAddrs, freeLoopback(t))
		rs.sshAddrs = append(rs.sshAddrs, freeLoopback(t))
	}
	rs.api, rs.ssh = startBalancer(t, rs.apiAddrs), startBalancer(t, rs.sshAddrs)
	rs.policy = renderPolicy(t, replicaPolicy, rs.w.login, rs.people(), map[string]*sshdtest.Server{"db1": rs.w.db1, "db2": rs.w.db2})
	for i := range rs.r {
		rs.serve(t, i)
	}
	for i, d := range rs.r[1:] {
		if d.Fingerprint != first.Fingerprint {
			t.Fatalf("replica %d serves TLS fingerprint %s, replica 0 %s: the TLS files were not shared", i+1, d.Fingerprint, first.Fingerprint)
		}
	}
	for _, e := range rs.people() {
		rs.login(t, e)
	}
	return rs
}

// copyReplica makes another replica's data directory from first's as an
// operator would: replicaFiles copied with their modes, then `jitd init`
// on it with the same store, which keeps every copied key and makes only
// what is missing (its own bastion host key and spool directory).
func copyReplica(t *testing.T, first *daemon, url string) *daemon {
	t.Helper()
	d := &daemon{Data: filepath.Join(t.TempDir(), "data"), UserCA: first.UserCA}
	for _, f := range replicaFiles {
		src, dst := filepath.Join(first.Data, f), filepath.Join(d.Data, f)
		fi, err := os.Stat(src)
		if err != nil {
			t.Fatalf("stat %s: %v", src, err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	out := jitd(t, "init", "--data", d.Data, "--store", url)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "created") && !strings.HasSuffix(line, string(filepath.Separator)+"bastion_host_key") {
			t.Fatalf("jitd init on a copied data directory made more than its bastion host key: %q\n%s", line, out)
		}
	}
	if exists(filepath.Join(d.Data, "jitssh.db")) {
		t.Errorf("jitd init --store postgres:// made a SQLite file in %s", d.Data)
	}
	return d
}

// freeLoopback is a 127.0.0.1 address whose port was free just now.
func freeLoopback(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (rs *replicaSet) people() []*engineer {
	return append(rs.w.everyone(), rs.dave)
}

// flags are replica i's jitd serve flags: its fixed API and bastion
// addresses, the balancer's bastion address as the one public address of
// every replica, the shared store and object store.
func (rs *replicaSet) flags(i int) []string {
	f := []string{"--api", rs.apiAddrs[i], "--bastion", rs.sshAddrs[i], "--public-addr", rs.ssh.Addr(),
		"--store", rs.url,
		"--recordings", "s3://" + s3test.Bucket + "/jit", "--s3-endpoint", rs.s3.Endpoint, "--s3-region", "us-east-1",
		"--login-rate", "1000/1m", "--request-rate", "1000/1m", "--shutdown-timeout", "2s"}
	if rs.replicaFlags {
		f = append(f, "--replica-id", "replica-"+string(rune('a'+i)), "--advertise-url", "https://"+rs.apiAddrs[i])
	}
	return f
}

// serve (re)starts replica i; it stops at the end of t.
func (rs *replicaSet) serve(t testing.TB, i int) {
	t.Helper()
	d := rs.r[i]
	d.Env = rs.s3.EnvList()
	d.serve(t, rs.policy, rs.flags(i)...)
}

// kill ends replica i with SIGKILL, as a crash would, and waits for it.
func (rs *replicaSet) kill(i int) {
	d := rs.r[i]
	d.terminated = true
	_ = d.cmd.Process.Kill()
	<-d.done
}

// login logs e in through the API balancer.
func (rs *replicaSet) login(t testing.TB, e *engineer) {
	t.Helper()
	mustRun(t, e, "login", "--ca", "https://"+rs.api.Addr(), "--fingerprint", rs.r[0].Fingerprint, "--user", e.Name, "-i", e.Key)
}

// through runs f with only replica api in the API balancer's rotation and
// only replica bastion in the bastion balancer's; -1 leaves one as it is.
func (rs *replicaSet) through(api, bastion int, f func()) {
	if api >= 0 {
		rs.api.use(api)
		defer rs.api.use()
	}
	if bastion >= 0 {
		rs.ssh.use(bastion)
		defer rs.ssh.use()
	}
	f()
}

// knownHosts fetches GET /v1/known_hosts from replica i directly. The
// certificate is not checked here: the body is public, and the test
// compares it across replicas.
func (rs *replicaSet) knownHosts(t testing.TB, i int) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + rs.apiAddrs[i] + "/v1/known_hosts")
	if err != nil {
		t.Fatalf("GET /v1/known_hosts of replica %d: %v", i, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/known_hosts of replica %d: %s %v", i, resp.Status, errors.Join(err))
	}
	return string(b)
}

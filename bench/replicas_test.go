package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/daemon"
	"github.com/jitssh/jitssh/internal/pgtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// Load bounds of BenchmarkReplicas, per phase. Run it with -benchtime 1x.
const (
	replicaCerts     = 3000             // certificates requested in each phase
	replicaClients   = 64               // concurrent requesters, split evenly over the replicas
	replicaLimit     = 90 * time.Second // a phase stops here even if unfinished
	replicaStatFlush = 1500 * time.Millisecond
)

// replicaFiles are what an operator copies from the first replica's data
// directory to every other (docs/scale-out.md, "Several replicas: setting
// up"); e2e's TestIssue12Replicas makes its replicas the same way.
var replicaFiles = []string{
	"ca/user_ca", "ca/user_ca.pub", "ca/host_ca", "ca/host_ca.pub", "ca/target_ca", "ca/target_ca.pub",
	"ca/checkpoint_key", "ca/checkpoint_key.pub", "tls/tls.crt", "tls/tls.key", "policy.yaml",
}

// jitdProc is a `jitd serve` process of a benchmark.
type jitdProc struct {
	pid    int
	client *api.Client // logged in as benchUser
}

// phaseResult is one phase's measurement.
type phaseResult struct {
	certs   int64
	elapsed time.Duration
	jitdCPU []time.Duration // per jitd process serving the phase
	pgCPU   time.Duration
	pg      pgStats // deltas over the phase
	lock    lockSample
	genCPU  time.Duration
}

// BenchmarkReplicas measures issuance through the binaries: one SQLite
// jitd, then one, two and three jitd replicas on one PostgreSQL (a replica
// is started before each phase and stays), in the same run. Each phase
// requests replicaCerts certificates from replicaClients concurrent
// clients through the HTTPS API, split evenly over the replicas as a
// round-robin balancer would; it reports certificates per second, the CPU
// per certificate of each jitd process and of PostgreSQL, and
// PostgreSQL's commits per second.
func BenchmarkReplicas(b *testing.B) {
	srv, err := pgtest.Start()
	pgtest.Need(b, srv, err)
	b.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			b.Error(err)
		}
	})
	bin := buildJitd(b)
	sqlite := initDaemon(b)
	user := sqlite.user
	pubs := make([]string, replicaCerts)
	for i := range pubs {
		pubs[i] = ca.PublicKeyLine(testkit.Signer(b).PublicKey(), "")
	}

	b.Run("sqlite", func(b *testing.B) {
		p := startBenchJitd(b, bin, sqlite.dir, sqlite.addrs.TLSFingerprint, user)
		runPhases(b, []*jitdProc{p}, nil, "", pubs)
	})

	url := srv.Database(b)
	dirs, fp := replicaDirs(b, url, 3)
	var procs []*jitdProc
	for n := 1; n <= 3; n++ {
		// Started outside the sub-benchmark, so it keeps serving the next.
		procs = append(procs, startBenchJitd(b, bin, dirs[n-1], fp, user, "--store", url))
		b.Run(fmt.Sprintf("postgres/replicas=%d", n), func(b *testing.B) {
			runPhases(b, procs, srv, url, pubs)
		})
	}
}

// runPhases runs b.N phases on procs and reports the last.
func runPhases(b *testing.B, procs []*jitdProc, srv *pgtest.Server, url string, pubs []string) {
	var res phaseResult
	for i := 0; i < b.N; i++ {
		res = issuePhase(b, procs, srv, url, pubs)
	}
	if res.certs == 0 {
		return
	}
	n := float64(res.certs)
	perCert := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
	var total time.Duration
	var each []string
	for i, c := range res.jitdCPU {
		total += c
		b.ReportMetric(perCert(c), fmt.Sprintf("jitd%d_cpu_µs/cert", i+1))
		each = append(each, fmt.Sprintf("%.0f", perCert(c)))
	}
	rate := n / res.elapsed.Seconds()
	b.ReportMetric(rate, "certs/s")
	b.ReportMetric(perCert(total), "jitd_cpu_µs/cert")
	b.ReportMetric(perCert(res.genCPU), "client_cpu_µs/cert")
	line := fmt.Sprintf("%d jitd: %d certificates in %v, %.0f certs/s; jitd CPU µs/cert %s (total %.0f); clients %.0f µs/cert",
		len(procs), res.certs, res.elapsed.Round(time.Millisecond), rate, strings.Join(each, " + "), perCert(total), perCert(res.genCPU))
	if srv != nil {
		b.ReportMetric(perCert(res.pgCPU), "pg_cpu_µs/cert")
		secs := res.elapsed.Seconds()
		b.ReportMetric(float64(res.pg.commits)/secs, "pg_commits/s")
		b.ReportMetric(n/float64(max(res.pg.commits, 1)), "certs/commit")
		b.ReportMetric(float64(res.pg.appends)/secs, "appends/s")
		b.ReportMetric(float64(res.pg.appends)/n, "events/cert")
		b.ReportMetric(float64(res.pg.inserted)/n, "rows/cert")
		if ls := res.lock; ls.samples > 0 {
			b.ReportMetric(float64(ls.contended)/float64(ls.samples), "lock_contended_share")
			b.ReportMetric(float64(ls.waiters)/float64(ls.samples), "lock_waiters")
			line += fmt.Sprintf("; chain lock waited for in %d of %d samples (%.2f waiters on average)", ls.contended, ls.samples, float64(ls.waiters)/float64(ls.samples))
		}
		line += fmt.Sprintf("; PostgreSQL %.0f µs/cert, %.0f commits/s (%.1f certs per commit), %.0f appends/s (%.2f events, %.1f rows per cert)",
			perCert(res.pgCPU), float64(res.pg.commits)/secs, n/float64(max(res.pg.commits, 1)),
			float64(res.pg.appends)/secs, float64(res.pg.appends)/n, float64(res.pg.inserted)/n)
	}
	b.Log(line)
}

// issuePhase requests one certificate per key in pubs from replicaClients
// goroutines, goroutine i through procs[i%len(procs)], and measures it.
func issuePhase(b *testing.B, procs []*jitdProc, srv *pgtest.Server, url string, pubs []string) phaseResult {
	ctx, cancel := context.WithTimeout(context.Background(), replicaLimit)
	defer cancel()
	pg0stats := readPGStats(b, url)
	pg0 := pgServerCPU(b, srv)
	cpu0 := jitdCPUs(b, procs)
	gen0 := testkit.ProcessCPU(b)
	var next, issued atomic.Int64
	var wg sync.WaitGroup
	sampled := make(chan lockSample, 1)
	go func() { sampled <- sampleChainLock(ctx, url) }()
	start := time.Now()
	for w := range replicaClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := procs[w%len(procs)].client
			for {
				i := next.Add(1) - 1
				if i >= int64(len(pubs)) || ctx.Err() != nil {
					return
				}
				resp, err := c.CreateRequest(ctx, api.CreateRequestBody{Host: "db1", Login: "root", Reason: "benchmark replicas", PublicKey: pubs[i]})
				if err != nil || resp.Certificate == "" {
					b.Errorf("create request %d through jitd %d: %v (certificate %t)", i, w%len(procs)+1, err, err == nil && resp.Certificate != "")
					cancel()
					return
				}
				issued.Add(1)
			}
		}()
	}
	wg.Wait()
	res := phaseResult{certs: issued.Load(), elapsed: time.Since(start), genCPU: testkit.ProcessCPU(b) - gen0}
	cancel()
	res.lock = <-sampled
	for i, c := range jitdCPUs(b, procs) {
		res.jitdCPU = append(res.jitdCPU, c-cpu0[i])
	}
	res.pgCPU = pgServerCPU(b, srv) - pg0
	res.pg = readPGStats(b, url).minus(pg0stats)
	res.pg.commits -= int64(res.lock.samples) // each of the sampler's queries is a transaction
	if res.certs < int64(len(pubs)) {
		b.Errorf("issued %d of %d certificates within %v", res.certs, len(pubs), replicaLimit)
	}
	return res
}

// pgStats are counters of the benchmark's database.
type pgStats struct {
	commits  int64 // pg_stat_database.xact_commit: committed transactions, reads included
	inserted int64 // pg_stat_database.tup_inserted: rows inserted
	appends  int64 // the chain's last seq: events appended
}

func (s pgStats) minus(o pgStats) pgStats {
	return pgStats{commits: s.commits - o.commits, inserted: s.inserted - o.inserted, appends: s.appends - o.appends}
}

// readPGStats reads the counters after waiting for the backends'
// statistics to be flushed (at most once a second while they are busy);
// zero without url.
func readPGStats(b *testing.B, url string) pgStats {
	if url == "" {
		return pgStats{}
	}
	time.Sleep(replicaStatFlush)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatalf("connect to read pg_stat_database: %v", err)
	}
	defer conn.Close(ctx)
	var s pgStats
	if err := conn.QueryRow(ctx, `SELECT xact_commit, tup_inserted, (SELECT coalesce(max(seq), 0) FROM events)
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&s.commits, &s.inserted, &s.appends); err != nil {
		b.Fatalf("read pg_stat_database: %v", err)
	}
	return s
}

// lockSample is what sampleChainLock saw: of its samples, how many had a
// backend waiting for an advisory lock (the chain lock is the only one
// jitd takes), and the waiters summed over all samples.
type lockSample struct {
	samples, contended, waiters int
}

// sampleChainLock looks at pg_stat_activity every 10 ms until ctx is done
// and counts the backends waiting for an advisory lock. Without url it
// returns at once.
func sampleChainLock(ctx context.Context, url string) lockSample {
	var s lockSample
	if url == "" {
		return s
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return s
	}
	defer conn.Close(context.Background())
	for ctx.Err() == nil {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&n); err != nil {
			return s
		}
		s.samples++
		s.waiters += n
		if n > 0 {
			s.contended++
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s
}

func pgServerCPU(b *testing.B, srv *pgtest.Server) time.Duration {
	if srv == nil {
		return 0
	}
	d, err := srv.CPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func jitdCPUs(b *testing.B, procs []*jitdProc) []time.Duration {
	out := make([]time.Duration, len(procs))
	for i, p := range procs {
		d, err := pidCPU(p.pid)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = d
	}
	return out
}

// pidCPU is the user plus system CPU time process pid has used so far,
// from /proc/PID/stat (fields 14 and 15, in USER_HZ = 100 ticks a second).
func pidCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:])) // f[0] is field 3
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, raw)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// replicaDirs makes n data directories for replicas on the store at url:
// the first by init, the others by copying replicaFiles from it and
// running init on them, which keeps what was copied. It returns the
// directories and the TLS fingerprint they share.
func replicaDirs(b *testing.B, url string, n int) ([]string, string) {
	b.Helper()
	var dirs []string
	var fp string
	for i := range n {
		dir := filepath.Join(b.TempDir(), "data")
		if i > 0 {
			copyFiles(b, dirs[0], dir, replicaFiles)
		}
		res, err := daemon.Layout{Dir: dir, Store: url}.Init(context.Background(), ca.Ed25519, []string{"127.0.0.1"}, time.Now())
		if err != nil {
			b.Fatalf("init replica %d: %v", i+1, err)
		}
		if i > 0 && res.TLSFingerprint != fp {
			b.Fatalf("replica %d has TLS fingerprint %s, the first %s", i+1, res.TLSFingerprint, fp)
		}
		fp = res.TLSFingerprint
		dirs = append(dirs, dir)
	}
	return dirs, fp
}

// copyFiles copies each file (a path relative to from) to the same path
// under to, with its permission bits.
func copyFiles(b *testing.B, from, to string, files []string) {
	b.Helper()
	for _, f := range files {
		src, dst := filepath.Join(from, f), filepath.Join(to, f)
		fi, err := os.Stat(src)
		if err != nil {
			b.Fatalf("copy %s: %v", f, err)
		}
		data, err := os.ReadFile(src)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(dst), 0o700)
		}
		if err == nil {
			err = os.WriteFile(dst, data, fi.Mode().Perm())
		}
		if err != nil {
			b.Fatalf("copy %s: %v", f, err)
		}
	}
}

// buildJitd builds cmd/jitd into a temporary directory of b.
func buildJitd(b *testing.B) string {
	b.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Skipf("go toolchain not in $PATH, cannot build jitd: %v", err)
	}
	bin := filepath.Join(b.TempDir(), "jitd")
	if out, err := exec.Command(goBin, "build", "-tags", "sqlite_fts5", "-o", bin, "github.com/jitssh/jitssh/cmd/jitd").CombinedOutput(); err != nil {
		b.Fatalf("build jitd: %v\n%s", err, out)
	}
	return bin
}

// startBenchJitd writes the benchmark policy (user enrolled) into dir,
// serves it with bin and extra flags (API only, rate limits lifted) until b
// ends, and logs in as benchUser.
func startBenchJitd(b *testing.B, bin, dir, fingerprint string, user ssh.Signer, extra ...string) *jitdProc {
	b.Helper()
	if err := writePolicy(dir, user.PublicKey(), "root", []benchHost{{name: "db1", addr: "127.0.0.1:22"}}); err != nil {
		b.Fatal(err)
	}
	apiAddr := freeAddr(b)
	pid := serveJitd(b, bin, dir, append([]string{"--api", apiAddr, "--login-rate", "1048576/1m", "--request-rate", "1048576/1m"}, extra...), apiAddr)
	c, err := api.NewClient("https://"+apiAddr, fingerprint, "")
	if err != nil {
		b.Fatalf("api client: %v", err)
	}
	b.Cleanup(c.Close)
	if _, err := c.Login(context.Background(), benchUser, user, 0); err != nil {
		b.Fatalf("login as %s: %v", benchUser, err)
	}
	return &jitdProc{pid: pid, client: c}
}

// serveJitd runs `bin serve --data dir args...` until b ends (SIGTERM,
// SIGKILL after processStopIn), waits for each of listen to accept
// connections and returns the process id. Its log is in b's temporary
// directory and shown if it does not come up.
func serveJitd(b *testing.B, bin, dir string, args []string, listen ...string) int {
	b.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--data", dir}, args...)...)
	logf, err := os.Create(filepath.Join(b.TempDir(), "jitd.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = logf.Close() })
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatalf("start jitd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(processStopIn):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for _, addr := range listen {
		if err := waitListening(addr, done); err != nil {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("jitd: %v\n%s", err, log)
		}
	}
	return cmd.Process.Pid
}

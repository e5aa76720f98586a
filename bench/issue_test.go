package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/sshkey"
)

// Load bounds of BenchmarkIssue, per iteration. Run it with -benchtime 1x:
// each iteration is a whole measurement.
const (
	apiCerts     = 20000            // certificates requested through the API
	apiClients   = 256              // concurrent requesters sharing one client
	apiTimeLimit = 90 * time.Second // the API phase stops here even if unfinished
	signCerts    = 100000           // in-process SignUserCert calls
	keygenCerts  = 50               // ssh-keygen -s processes
)

// BenchmarkIssue measures certificates per second three ways in one run:
// through the HTTPS API of an in-process daemon (policy decision, SQLite
// WAL synchronous=FULL group commit of the request, certificate and events,
// then signing), in-process ca.SignUserCert on every core, and `ssh-keygen
// -s` as a process on every core. It reports each rate and the ratios.
func BenchmarkIssue(b *testing.B) {
	env := startDaemon(b, "root", []benchHost{{name: "db1", addr: "127.0.0.1:22"}})
	client := env.client(b)
	pubs := make([]string, apiCerts)
	for i := range pubs {
		pubs[i] = ca.PublicKeyLine(testkit.Signer(b).PublicKey(), "")
	}
	keygenDir := b.TempDir()
	keygenPub := filepath.Join(keygenDir, "id_ed25519.pub")
	if err := os.WriteFile(keygenPub, []byte(pubs[0]+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	haveKeygen := sshdtest.Path("ssh-keygen") != ""

	var apiRate, apiCPU, signRate, keygenRate float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		apiRate, apiCPU = issueThroughAPI(b, client, pubs)
		signRate = signInProcess(b, env.keys.User, pubs[0])
		if haveKeygen {
			keygenRate = signWithKeygen(b, filepath.Join(env.dir, "ca", "user_ca"), keygenPub)
		}
	}
	b.StopTimer()
	b.ReportMetric(apiRate, "api_certs/s")
	b.ReportMetric(apiCPU, "api_cpu_µs/cert")
	b.ReportMetric(signRate, "signcert_certs/s")
	b.ReportMetric(apiRate/signRate, "api/signcert")
	if haveKeygen {
		b.ReportMetric(keygenRate, "keygen_certs/s")
		b.ReportMetric(apiRate/keygenRate, "api/keygen")
	} else {
		b.Log("ssh-keygen not installed: no ssh-keygen baseline")
	}
	b.Logf("issuance on %d cores: API %.0f certs/s (%d clients, %.0f µs CPU per certificate), SignUserCert %.0f certs/s, ssh-keygen -s %.0f certs/s; API/SignUserCert %.3f, API/ssh-keygen %.1f",
		runtime.GOMAXPROCS(0), apiRate, apiClients, apiCPU, signRate, keygenRate, apiRate/signRate, apiRate/keygenRate)
}

// issueThroughAPI requests one certificate per public key from apiClients
// goroutines and returns certificates per second and the CPU time this
// process (daemon and load generator together) spent per certificate. It
// stops early, with an error, at apiTimeLimit.
func issueThroughAPI(b *testing.B, c *api.Client, pubs []string) (rate, cpuMicros float64) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeLimit)
	defer cancel()
	var next, issued atomic.Int64
	var wg sync.WaitGroup
	cpu0 := testkit.ProcessCPU(b)
	start := time.Now()
	for w := 0; w < apiClients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(pubs)) || ctx.Err() != nil {
					return
				}
				resp, err := c.CreateRequest(ctx, api.CreateRequestBody{Host: "db1", Login: "root", Reason: "benchmark issuance", PublicKey: pubs[i]})
				if err != nil {
					b.Errorf("create request %d: %v", i, err)
					cancel()
					return
				}
				if resp.Certificate == "" {
					b.Errorf("create request %d: state %q, no certificate", i, resp.Request.State)
					cancel()
					return
				}
				issued.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := testkit.ProcessCPU(b) - cpu0
	n := issued.Load()
	if n < int64(len(pubs)) {
		b.Errorf("API issued %d of %d certificates within %v", n, len(pubs), apiTimeLimit)
	}
	if n == 0 {
		return 0, 0
	}
	return float64(n) / elapsed.Seconds(), float64(cpu.Microseconds()) / float64(n)
}

// signInProcess signs signCerts certificates with ca.SignUserCert from
// GOMAXPROCS goroutines and returns certificates per second.
func signInProcess(b *testing.B, signer ssh.Signer, pubLine string) float64 {
	key, err := sshkey.ParseAuthorized(pubLine)
	if err != nil {
		b.Fatalf("parse key: %v", err)
	}
	workers := runtime.GOMAXPROCS(0)
	var next atomic.Int64
	var wg sync.WaitGroup
	now := time.Now()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= signCerts {
				serial, err := ca.NewSerial(nil)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := ca.SignUserCert(signer, ca.UserCertSpec{
					Key: key, Serial: serial, KeyID: "jit:bench:" + benchUser, Principals: []string{"root@db1"},
					ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(10 * time.Minute),
					Extensions: map[string]string{ca.ExtPermitPTY: ""},
				}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return signCerts / time.Since(start).Seconds()
}

// signWithKeygen runs keygenCerts `ssh-keygen -s` processes, GOMAXPROCS at
// a time, and returns certificates per second.
func signWithKeygen(b *testing.B, caKey, pub string) float64 {
	keygen := sshdtest.Path("ssh-keygen")
	workers := runtime.GOMAXPROCS(0)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, err := os.MkdirTemp(filepath.Dir(pub), "keygen")
			if err != nil {
				b.Error(err)
				return
			}
			own := filepath.Join(dir, "id.pub")
			data, err := os.ReadFile(pub)
			if err == nil {
				err = os.WriteFile(own, data, 0o644)
			}
			if err != nil {
				b.Error(err)
				return
			}
			for {
				i := next.Add(1)
				if i > keygenCerts {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				out, err := exec.CommandContext(ctx, keygen, "-q", "-s", caKey, "-I", fmt.Sprintf("jit:bench%d:%s", i, benchUser),
					"-n", "root@db1", "-V", "-1m:+10m", "-z", strconv.FormatInt(i, 10), "-O", "clear", "-O", "permit-pty", own).CombinedOutput()
				cancel()
				if err != nil {
					b.Errorf("ssh-keygen -s: %v\n%s", err, out)
					return
				}
			}
		}()
	}
	wg.Wait()
	return keygenCerts / time.Since(start).Seconds()
}

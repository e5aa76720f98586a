package bench

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// setupRuns is how many sessions each path opens in BenchmarkSessionSetup.
const setupRuns = 30

// BenchmarkSessionSetup measures `ssh ... true` end to end (process start,
// key exchange, authentication, session, exit) through the bastion and
// through OpenSSH ProxyJump, setupRuns times each, alternating so that
// drift hits both alike. It reports p50 and p99 per path and the ratios.
func BenchmarkSessionSetup(b *testing.B) {
	p := setupPaths(b, inProcess)
	kinds := []struct {
		name string
		cmd  func(context.Context, ...string) *exec.Cmd
	}{
		{name: "bastion", cmd: p.bastion},
		{name: "proxyjump", cmd: p.proxyJump},
	}
	// One warm-up each (page cache, first SQLite pages, sshd's first fork),
	// verbose, to check that every hop negotiated the pinned key exchange.
	for _, k := range kinds {
		hops := 1
		if k.name == "proxyjump" {
			hops = 2
		}
		checkKex(b, k.name, runOK(b, k.name+" warm-up", k.cmd(context.Background(), "-v", "true")), hops)
	}
	lat := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for run := 0; run < setupRuns; run++ {
			for _, k := range kinds {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				runOK(b, k.name+" true", k.cmd(ctx, "true"))
				lat[k.name] = append(lat[k.name], time.Since(start))
				cancel()
			}
		}
	}
	b.StopTimer()
	bp50, bp99 := percentile(lat["bastion"], 50), percentile(lat["bastion"], 99)
	jp50, jp99 := percentile(lat["proxyjump"], 50), percentile(lat["proxyjump"], 99)
	b.ReportMetric(ms(bp50), "bastion_p50_ms")
	b.ReportMetric(ms(bp99), "bastion_p99_ms")
	b.ReportMetric(ms(jp50), "proxyjump_p50_ms")
	b.ReportMetric(ms(jp99), "proxyjump_p99_ms")
	b.ReportMetric(ms(bp50)/ms(jp50), "p50_bastion/proxyjump")
	b.ReportMetric(ms(bp99)/ms(jp99), "p99_bastion/proxyjump")
	b.ReportMetric(0, "ns/op")
	b.Logf("session set-up (ssh ... true, %s, %d each): bastion p50 %.1f ms p99 %.1f ms; ProxyJump p50 %.1f ms p99 %.1f ms; ratio p50 %.2f p99 %.2f",
		kex, len(lat["bastion"]), ms(bp50), ms(bp99), ms(jp50), ms(jp99), ms(bp50)/ms(jp50), ms(bp99)/ms(jp99))
}

// checkKex fails unless ssh -v output shows hops key exchanges, all with
// kex, and logs the ciphers negotiated.
func checkKex(b *testing.B, name string, verbose []byte, hops int) {
	b.Helper()
	var algs, ciphers []string
	for _, line := range strings.Split(string(verbose), "\n") {
		if _, alg, ok := strings.Cut(line, "kex: algorithm: "); ok {
			algs = append(algs, strings.TrimSpace(alg))
		}
		if _, c, ok := strings.Cut(line, "kex: server->client cipher: "); ok {
			ciphers = append(ciphers, strings.TrimSpace(c))
		}
	}
	if len(algs) != hops {
		b.Fatalf("%s: ssh -v shows %d key exchanges %q, want %d", name, len(algs), algs, hops)
	}
	for _, a := range algs {
		if a != kex {
			b.Fatalf("%s: key exchange %q, want %q", name, a, kex)
		}
	}
	b.Logf("%s: key exchange %q, server->client %q", name, algs, ciphers)
}

package audit

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// BenchmarkStoreEngines appends with 64 concurrent callers on SQLite and on
// PostgreSQL, through one Store (one jitd) or two Stores on one database
// (two replicas' writers, PostgreSQL only: each takes the chain lock per
// batch). It reports appends and commits per second, the CPU of this
// process per append and, for PostgreSQL, the server's CPU per append.
func BenchmarkStoreEngines(b *testing.B) {
	cases := []struct {
		engine  string
		writers int
	}{{"sqlite", 1}, {"postgres", 1}, {"postgres", 2}}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/writers=%d", c.engine, c.writers), func(b *testing.B) {
			stores := benchStores(b, c.engine, c.writers)
			e := benchEvent()
			ctx := context.Background()
			b.SetParallelism(32) // 64 callers on 2 cores
			var next atomic.Int64
			pg0 := pgCPU(b, c.engine)
			cpu0 := testkit.ProcessCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				s := stores[int(next.Add(1))%len(stores)]
				for pb.Next() {
					if err := s.Do(ctx, func(tx *Tx) error { _, err := tx.Append(e); return err }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			var commits int64
			for _, s := range stores {
				commits += s.commits.Load()
			}
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/secs, "appends/s")
			b.ReportMetric(float64(commits)/secs, "commits/s")
			b.ReportMetric(float64((testkit.ProcessCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/append")
			if c.engine == "postgres" {
				b.ReportMetric(float64((pgCPU(b, c.engine)-pg0).Microseconds())/float64(b.N), "pg-cpu-µs/append")
			}
		})
	}
}

func benchStores(b *testing.B, engine string, n int) []*Store {
	b.Helper()
	first, target := openTest(b)
	if engine == "postgres" {
		first, target = openPG(b)
	}
	stores := []*Store{first}
	for range n - 1 {
		s, err := OpenURL(context.Background(), target, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	return stores
}

// pgCPU is the package's PostgreSQL server's CPU so far (0 for SQLite).
func pgCPU(b *testing.B, engine string) time.Duration {
	b.Helper()
	if engine != "postgres" {
		return 0
	}
	d, err := pgServer.Server(b).CPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}

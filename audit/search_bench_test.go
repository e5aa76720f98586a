package audit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkIndexText indexes a fast text download as the bastion sends it:
// batches of log lines of about 86 bytes of one session, one Do per batch.
// It reports the cost per line. In the distinct cases every line differs (a
// counter), as in a real log; the repeated case is one line over and over,
// as `yes LINE` prints it (bench.BenchmarkThroughput's text download).
func BenchmarkIndexText(b *testing.B) {
	for _, bc := range []struct {
		name     string
		batch    int
		repeated bool
	}{
		{name: "distinct-batch-1", batch: 1},
		{name: "distinct-batch-512", batch: 512},
		{name: "distinct-batch-4096", batch: 4096},
		{name: "repeated-batch-512", batch: 512, repeated: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			batch := bc.batch
			s, _ := openTest(b)
			lines := make([]TextLine, batch)
			n := 0
			b.ResetTimer()
			for b.Loop() {
				for i := range lines {
					k := n
					if bc.repeated {
						k = 0
					}
					lines[i] = TextLine{SessionID: "ses-bench", Offset: time.Duration(n) * time.Microsecond, Kind: "o",
						Text: fmt.Sprintf("2026-11-26T03:41:15Z app[%7d]: GET /api/v1/orders/%08d 200 12ms bytes=4312", k%1000003, k)}
					n++
				}
				if err := s.Do(context.Background(), func(tx *Tx) error { return tx.IndexText(lines) }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/line")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

package recstore

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/s3test"
	"github.com/jitssh/jitssh/sessionlog"
)

// benchStream is the bounded streaming session of the benchmark: this
// much incompressible output, recorded as fast as the writer takes it.
const benchStream = 48 << 20

// BenchmarkRecordingStore records one streaming session into the local
// store and into versitygw in the same run, and reports the throughput
// from the first byte to the recording being safe where it lives (the
// local file closed and fsynced; the object uploaded and read back), the
// spool's peak size and the peak backlog (bytes not yet in a stored part).
func BenchmarkRecordingStore(b *testing.B) {
	srv := s3test.Start(b)
	srv.Env(b)
	for _, remote := range []bool{false, true} {
		name := "local"
		if remote {
			name = "s3"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				benchOnce(b, srv, remote)
			}
		})
	}
}

func benchOnce(b *testing.B, srv *s3test.Server, remote bool) {
	spool := b.TempDir()
	cfg := Config{Spool: spool, Poll: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if remote {
		cfg.Location, cfg.S3 = Location{Bucket: s3test.Bucket, Prefix: "bench"}, S3Config{Endpoint: srv.Endpoint, Region: "us-east-1"}
		cfg.Lookup = (&ends{}).lookup
	}
	st, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	st.Start()
	name := "2026/12/01/bench-" + time.Now().Format("150405.000000000") + ".cast.zst"
	p := filepath.Join(spool, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		b.Fatal(err)
	}
	w, err := sessionlog.Create(p, sessionlog.Header{Version: 2, Width: 80, Height: 24}, sessionlog.WriterOptions{SyncInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	var spoolPeak, backlogPeak int64
	sample := func() {
		if fi, err := os.Stat(p); err == nil {
			spoolPeak = max(spoolPeak, fi.Size())
		}
		backlogPeak = max(backlogPeak, st.Backlog().Bytes)
	}
	start := time.Now()
	st.Started(p)
	r := &recording{path: p, name: name, w: w}
	for sent := 0; sent < benchStream; sent += 1 << 20 {
		r.outputB(b, 1<<20)
		sample()
	}
	sum, err := w.Close()
	if err != nil {
		b.Fatal(err)
	}
	st.Ended(p, sum.SHA256, sum.Size)
	deadline := time.Now().Add(2 * time.Minute)
	for remote && !gone(p)() {
		sample()
		if time.Now().After(deadline) {
			b.Fatalf("recording not uploaded within 2 minutes; backlog %+v", st.Backlog())
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	st.Close(ctx)
	cancel()
	b.ReportMetric(float64(benchStream)/elapsed.Seconds()/(1<<20), "MiB/s-output")
	b.ReportMetric(float64(sum.Size)/elapsed.Seconds()/(1<<20), "MiB/s-stored")
	b.ReportMetric(float64(spoolPeak)/(1<<20), "MiB-spool-peak")
	b.ReportMetric(float64(backlogPeak)/(1<<20), "MiB-backlog-peak")
}

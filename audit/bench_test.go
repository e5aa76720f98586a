package audit

import (
	"context"
	"testing"
)

// benchEvent is about the size of a real audit row (~300 bytes).
func benchEvent() Event {
	return Event{
		Type: "cert.issued", Code: "ok", Actor: "alice", User: "alice", Host: "db1.example.internal", Login: "root",
		RequestID: "req-01HZX3Q4M5N6P7R8S9T0V1W2X3", SessionID: "", Serial: 0x1234567890abcdef, ClientAddr: "10.0.0.12:53122",
		Message: "issued user certificate for root@db1.example.internal valid 10m",
		Data:    map[string]string{"role": "dba", "ttl": "10m0s", "key": "SHA256:7b3a1c0c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9"},
	}
}

func reportEventsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendSerial is one caller at a time: every append is its own
// transaction and fsync.
func BenchmarkAppendSerial(b *testing.B) {
	s, _ := openTest(b)
	e := benchEvent()
	ctx := context.Background()
	for b.Loop() {
		if err := s.Do(ctx, func(tx *Tx) error { _, err := tx.Append(e); return err }); err != nil {
			b.Fatal(err)
		}
	}
	reportEventsPerSecond(b)
}

// BenchmarkAppendParallel has many concurrent callers, each appending one
// event per Do, so group commit shares transactions and fsyncs.
func BenchmarkAppendParallel(b *testing.B) {
	s, _ := openTest(b)
	e := benchEvent()
	ctx := context.Background()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Do(ctx, func(tx *Tx) error { _, err := tx.Append(e); return err }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportEventsPerSecond(b)
}

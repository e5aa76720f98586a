package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
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

// issuanceTx writes what one direct issuance writes: the request row, its
// request.created event, the certificate row and its cert.issued event.
func issuanceTx(i int64) func(tx *Tx) error {
	now := time.Now().UTC()
	id := fmt.Sprintf("req_%016x%08x", now.UnixMilli(), i) // sorted by time, as grant makes them
	serial := rand.Uint64()>>1 | 1
	r := Request{ID: id, User: "bencher", Host: "db1", Login: "root", Role: "bench",
		Justification: "benchmark issuance", State: StateIssued, TTL: 30 * time.Minute,
		PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGkQm0z3n0n4l2tR5e1y2y3QJ3k5q7mJcT9oS0eXbq1d", CreatedAt: now,
		DecidedAt: now, DecisionReason: "allowed", Serial: serial, ClientAddr: "127.0.0.1:50000"}
	c := Certificate{Serial: serial, Kind: "user", RequestID: id, User: "bencher", Host: "db1", Login: "root",
		Principals: []string{"root@db1"}, KeyFingerprint: "SHA256:7b3a1c0c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9",
		KeyID: "jit:" + id + ":bencher", ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(30 * time.Minute),
		ClientAddr: "127.0.0.1:50000", IssuedAt: now}
	created := Event{Time: now, Type: "request.created", Code: "allowed", Actor: "bencher", User: "bencher",
		Host: "db1", Login: "root", RequestID: id, Serial: serial, ClientAddr: "127.0.0.1:50000", Message: r.Justification}
	issued := created
	issued.Type, issued.Message = "cert.issued", ""
	issued.Data = map[string]string{"principals": "root@db1", "valid_after": c.ValidAfter.Format(time.RFC3339),
		"valid_before": c.ValidBefore.Format(time.RFC3339), "key_fingerprint": c.KeyFingerprint, "key_id": c.KeyID, "role": "bench"}
	return func(tx *Tx) error {
		if err := tx.InsertRequest(r); err != nil {
			return err
		}
		if _, err := tx.Append(created); err != nil {
			return err
		}
		if err := tx.InsertCertificate(c); err != nil {
			return err
		}
		_, err := tx.Append(issued)
		return err
	}
}

// BenchmarkIssuanceParallel has 64 concurrent callers, each writing what one
// certificate issuance writes (two rows, two events) in one Do: the audit
// store's share of BenchmarkIssue in ./bench/.
func BenchmarkIssuanceParallel(b *testing.B) {
	s, _ := openTest(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32)
	cpu0 := testkit.ProcessCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Do(ctx, issuanceTx(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "issuances/s")
	b.ReportMetric(float64((testkit.ProcessCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

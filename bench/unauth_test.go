package bench

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/daemon"
)

// Bounds of BenchmarkUnauthConnMemory.
const (
	unauthConns  = 1000            // held connections per measurement
	unauthSettle = 2 * time.Second // after the last one, before measuring
)

// BenchmarkUnauthConnMemory holds unauthConns TCP connections to an
// in-process jitd's bastion that read the banner and then send nothing (a
// half-open handshake, what an attacker holds for free), and reports the
// growth of the Go heap and stacks per connection (runtime.ReadMemStats
// after a GC). The client ends of the connections live in the same process
// and are counted too (a net.Conn, well under 1 KiB); kernel socket buffers
// are not. The caps and the auth deadline are raised for the measurement.
func BenchmarkUnauthConnMemory(b *testing.B) {
	env := initDaemon(b)
	if err := writePolicy(env.dir, env.user.PublicKey(), "bench", []benchHost{{name: "t1", addr: "127.0.0.1:1"}}); err != nil {
		b.Fatal(err)
	}
	d, err := daemon.New(context.Background(), daemon.Config{
		Dir: env.dir, APIAddr: "127.0.0.1:0", BastionAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		Limits: daemon.Limits{BastionAuthTimeout: 10 * time.Minute, BastionMaxUnauth: 2 * unauthConns, BastionMaxUnauthPerAddr: 2 * unauthConns},
	})
	if err != nil {
		b.Fatalf("daemon: %v", err)
	}
	defer d.Close()
	addr := d.Addrs().Bastion
	var perConn float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before := heapAndStacks()
		conns := make([]net.Conn, 0, unauthConns)
		for range unauthConns {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				b.Fatalf("dial bastion after %d connections: %v", len(conns), err)
			}
			conns = append(conns, c)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
				b.Fatalf("connection %d: banner %q, %v", len(conns), line, err)
			}
		}
		time.Sleep(unauthSettle)
		after := heapAndStacks()
		for _, c := range conns {
			c.Close()
		}
		perConn = float64(after-before) / unauthConns
		b.Logf("Go heap+stacks %d KiB before, %d KiB with %d held unauthenticated connections: %.1f KiB each",
			before>>10, after>>10, unauthConns, perConn/1024)
	}
	b.ReportMetric(perConn/1024, "KiB/conn")
}

// heapAndStacks is the in-use heap and stack memory after a GC.
func heapAndStacks() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

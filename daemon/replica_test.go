package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/pgtest"
)

// pgDatabase starts a throwaway PostgreSQL for t and returns a fresh
// database's URL.
func pgDatabase(t *testing.T) string {
	t.Helper()
	srv, err := pgtest.Start()
	pgtest.Need(t, srv, err)
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return srv.Database(t)
}

// replicaDirs makes n data directories for replicas on store u: the first
// by jitd init, the others copies of it, as docs/scale-out.md says to make
// them (before a replica-id exists).
func replicaDirs(t *testing.T, u string, n int) []string {
	t.Helper()
	base := t.TempDir()
	first := filepath.Join(base, "r0")
	if _, err := (Layout{Dir: first, Store: u}).Init(context.Background(), ca.Ed25519, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	dirs := []string{first}
	for i := 1; i < n; i++ {
		d := filepath.Join(base, "r"+string(rune('0'+i)))
		if out, err := exec.Command("cp", "-a", first, d).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		dirs = append(dirs, d)
	}
	return dirs
}

// fastReplica is the Config of a replica on store u with short periods.
func fastReplica(dir, u string, clock func() time.Time) Config {
	return Config{Dir: dir, Store: u, APIAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock: clock, beat: 200 * time.Millisecond, checkpointEvery: 300 * time.Millisecond}
}

// serveAs builds and serves a daemon from cfg exactly as given (serve and
// serveConfig put every listener on 127.0.0.1:0) until the test stops it.
func serveAs(t *testing.T, cfg Config) *serving {
	t.Helper()
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- d.Serve(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// waitFor polls cond every 20ms until it holds or limit passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicasLeaseCheckpointsAndHandover runs two replicas on one
// PostgreSQL, each with its own clock offset so that a checkpoint's time
// names its signer: while A holds the housekeeping lease only A signs;
// A stopped without a word (as kill -9 leaves it) is replaced by B within
// the lease's TTL, from when only B signs, and A's Close signs nothing.
func TestReplicasLeaseCheckpointsAndHandover(t *testing.T) {
	u := pgDatabase(t)
	dirs := replicaDirs(t, u, 2)
	offB := 1000 * time.Hour
	a := serveAs(t, fastReplica(dirs[0], u, time.Now))
	waitFor(t, "A holds the lease", 5*time.Second, a.d.replica.holds)
	b := serveAs(t, fastReplica(dirs[1], u, func() time.Time { return time.Now().Add(offB) }))
	if a.d.replica.id == b.d.replica.id {
		t.Fatalf("both replicas are %s", a.d.replica.id)
	}
	ctx := context.Background()
	// Events for checkpoints to cover, through both replicas' stores.
	stopEvents := make(chan struct{})
	eventsDone := make(chan struct{})
	go func() {
		defer close(eventsDone)
		for i := 0; i < 2000; i++ {
			select {
			case <-stopEvents:
				return
			case <-time.After(30 * time.Millisecond):
			}
			st := a.d.store
			if i%2 == 1 {
				st = b.d.store
			}
			_ = st.Append(ctx, audit.Event{Time: time.Now(), Type: "test", Code: "ok"})
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(stopEvents)
			<-eventsDone
		}
	}
	defer stop()
	byB := func(c audit.Checkpoint) bool { return c.Time.After(time.Now().Add(offB / 2)) }
	count := func() (na, nb int) {
		cps, err := b.d.store.Checkpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cps {
			if byB(c) {
				nb++
			} else {
				na++
			}
		}
		return na, nb
	}
	waitFor(t, "A signs three checkpoints", 10*time.Second, func() bool { na, _ := count(); return na >= 3 })
	if _, nb := count(); nb != 0 || b.d.replica.holds() {
		t.Fatalf("B signed %d checkpoints (holds %v) while A held the lease", nb, b.d.replica.holds())
	}
	// A dies: its beats and renewals stop, its lease is not released.
	a.cancel()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	waitFor(t, "B takes the lease over", a.d.replica.ttl()+2*time.Second, b.d.replica.holds)
	t.Logf("B holds the lease %s after A stopped (TTL %s)", time.Since(died).Round(time.Millisecond), a.d.replica.ttl())
	naAtHandover, _ := count()
	waitFor(t, "B signs two checkpoints", 10*time.Second, func() bool { _, nb := count(); return nb >= 2 })
	cps, _ := b.d.store.Checkpoints(ctx)
	seenB := false
	for _, c := range cps {
		if byB(c) {
			seenB = true
		} else if seenB {
			t.Fatalf("A signed checkpoint %d after B took over", c.Seq)
		}
	}
	// A's Close: B holds the lease, so A signs no final checkpoint, though
	// A appended the newest event.
	stop()
	if err := a.d.store.Append(ctx, audit.Event{Time: time.Now(), Type: "test", Code: "ok"}); err != nil {
		t.Fatal(err)
	}
	a.done <- nil
	a.stop(t)
	if na, _ := count(); na != naAtHandover {
		t.Fatalf("A signed %d checkpoints after losing the lease", na-naAtHandover)
	}
}

// TestReplicaTwinRefused starts a copy of a running replica's data
// directory with its replica-id file: the copy is refused at start, and
// once the first stopped cleanly the copy starts as that replica.
func TestReplicaTwinRefused(t *testing.T) {
	u := pgDatabase(t)
	dirs := replicaDirs(t, u, 1)
	a := serveAs(t, fastReplica(dirs[0], u, time.Now))
	twin := filepath.Join(t.TempDir(), "twin")
	if out, err := exec.Command("cp", "-a", dirs[0], twin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	_, err := New(context.Background(), fastReplica(twin, u, time.Now))
	if !errors.Is(err, audit.ErrTwin) || !strings.Contains(err.Error(), "in use by another running jitd") {
		t.Fatalf("New of a twin = %v; want a refusal naming the replica in use", err)
	}
	reps, _, err := a.d.store.Replicas(context.Background())
	if err != nil || len(reps) != 1 || reps[0].Instance != a.d.replica.instance {
		t.Fatalf("registry after the refusal = %+v, %v; want only A's instance", reps, err)
	}
	a.stop(t)
	c := serveAs(t, fastReplica(twin, u, time.Now))
	if c.d.replica.id != a.d.replica.id {
		t.Fatalf("copy runs as %s, want %s", c.d.replica.id, a.d.replica.id)
	}
}

// TestReplicaTwinBeforeBastion: a twin (a copied data directory) is
// refused before its bastion takes a connection: New fails and nothing
// listens on the bastion address it was given.
func TestReplicaTwinBeforeBastion(t *testing.T) {
	u := pgDatabase(t)
	dirs := replicaDirs(t, u, 1)
	serveAs(t, fastReplica(dirs[0], u, time.Now))
	twin := filepath.Join(t.TempDir(), "twin")
	if out, err := exec.Command("cp", "-a", dirs[0], twin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	cfg := fastReplica(twin, u, time.Now)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.BastionAddr = ln.Addr().String()
	ln.Close()
	done := make(chan error, 1)
	go func() {
		d, err := New(context.Background(), cfg)
		if err == nil {
			d.Close()
		}
		done <- err
	}()
	// While the twin waits to tell a twin from a predecessor, its
	// bastion address must stay closed.
	for range 10 {
		if c, err := net.DialTimeout("tcp", cfg.BastionAddr, time.Second); err == nil {
			c.Close()
			t.Fatal("the twin's bastion accepted a connection before the twin check")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-done; !errors.Is(err, audit.ErrTwin) {
		t.Fatalf("New of a twin = %v, want ErrTwin", err)
	}
}

// TestDisplacedReplicaStopsServing: a replica whose ID another instance
// took over (it stalled past the freshness window; here its row is retired
// and taken behind its back) stops: Serve returns ErrTwin's error.
func TestDisplacedReplicaStopsServing(t *testing.T) {
	u := pgDatabase(t)
	dirs := replicaDirs(t, u, 1)
	a := serveAs(t, fastReplica(dirs[0], u, time.Now))
	r := a.d.replica
	err := a.d.store.Do(context.Background(), func(tx *audit.Tx) error {
		if err := tx.RetireReplica(r.id, r.instance); err != nil {
			return err
		}
		return tx.Heartbeat(audit.Replica{ID: r.id, Instance: "usurper"}, r.ttl())
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		a.stopped = true
		if !errors.Is(err, audit.ErrTwin) {
			t.Errorf("Serve of a displaced replica returned %v, want ErrTwin", err)
		}
		if err := a.d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a displaced replica still serves")
	}
}

package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/sessionlog"
)

// TestRV1IndexCatchUpStalePositionDuplicates (review rv1): two replicas
// start while a down replica's ended session has a pending catch-up; both
// list it (ownIndexCatchUps) with NextLine as it was at their start. The
// first takes the index lease and finishes; the second gets the lease
// after it and catches up again from its stale NextLine: every line after
// it is indexed twice. Here the first replica is this daemon's own start,
// and the second's call is d.catchUp with the position it listed.
func TestRV1IndexCatchUpStalePositionDuplicates(t *testing.T) {
	dir := initDir(t)
	l := Layout{Dir: dir}
	const lines, indexedBefore = 300, 120
	rec := filepath.Join(l.Recordings(), "2026", "11", "26", "sess1.cast")
	if err := os.MkdirAll(filepath.Dir(rec), 0o750); err != nil {
		t.Fatal(err)
	}
	var live []sessionlog.Line
	w, err := sessionlog.Create(rec, sessionlog.Header{Width: 80, Height: 24}, sessionlog.WriterOptions{OnLine: func(l sessionlog.Line) { live = append(live, l) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < lines; i++ {
		if err := w.Output(fmt.Appendf(nil, "dup probe %05d\r\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	store, err := audit.Open(l.Database())
	if err != nil {
		t.Fatal(err)
	}
	err = store.Do(context.Background(), func(tx *audit.Tx) error {
		if err := tx.InsertSession(audit.Session{ID: "sess1", User: "alice", Host: "db1", StartedAt: testNow, EndedAt: testNow.Add(time.Minute), RecordingPath: rec, Replica: "dead"}); err != nil {
			return err
		}
		var first []audit.TextLine
		for _, ln := range live[:indexedBefore] {
			first = append(first, audit.TextLine{SessionID: "sess1", Offset: ln.Offset, Kind: ln.Kind, Text: ln.Text})
		}
		if err := tx.IndexText(first); err != nil {
			return err
		}
		return tx.SetIndexPending("sess1", indexedBefore, testNow)
	})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := store.PendingIndexes(context.Background()) // what a second replica listed at its start
	if err != nil || len(stale) != 1 {
		t.Fatalf("pending = %+v, %v", stale, err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	s := serve(t, dir)
	waitFor(t, "first catch-up", 30*time.Second, func() bool {
		p, err := s.d.store.PendingIndexes(context.Background())
		return err == nil && len(p) == 0
	})
	// The second replica, having waited for the lease, catches up from
	// the position it listed.
	s.d.catchUp(context.Background(), stale[0])

	hits, err := s.d.store.Search(context.Background(), audit.SearchQuery{Text: "dup probe"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, h := range hits {
		seen[h.Snippet]++
	}
	for i := 0; i < lines; i++ {
		if c := seen[fmt.Sprintf("dup probe %05d", i)]; c != 1 {
			t.Fatalf("line %d found %d times, want once (%d hits)", i, c, len(hits))
		}
	}
}

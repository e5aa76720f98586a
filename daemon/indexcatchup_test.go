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

// TestRestartFinishesIndexCatchUp: jitd stopped in the middle of a search
// index catch-up (a session whose index fell behind, ended, and whose lines
// were being read back from its recording). The next start finishes it from
// the stored position: every line is searchable exactly once and the
// position is gone.
func TestRestartFinishesIndexCatchUp(t *testing.T) {
	dir := initDir(t)
	l := Layout{Dir: dir}
	const lines, indexedBefore = 3000, 1200
	store := seedBehindIndex(t, l, "catchup probe", lines, indexedBefore, "")
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	s := serve(t, dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := s.d.store.PendingIndexes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(p) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("catch-up still pending after 30 s: %+v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hits, err := s.d.store.Search(context.Background(), audit.SearchQuery{Text: "catchup probe"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, h := range hits {
		seen[h.Snippet]++
	}
	for i := 0; i < lines; i++ {
		if c := seen[fmt.Sprintf("catchup probe %05d", i)]; c != 1 {
			t.Fatalf("line %d found %d times, want once (%d hits)", i, c, len(hits))
		}
	}
}

// seedBehindIndex writes a recording of lines probe lines as session sess1
// of replica (empty: from before replicas), ended, whose search index holds
// only the first indexedBefore lines and stores the position to catch up
// from: what a session whose indexer fell behind leaves. It returns the
// store, open; the caller closes it before a daemon opens the directory.
func seedBehindIndex(t *testing.T, l Layout, probe string, lines, indexedBefore int, replica string) *audit.Store {
	t.Helper()
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
		if err := w.Output(fmt.Appendf(nil, "%s %05d\r\n", probe, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(live) != lines {
		t.Fatalf("recording gave %d lines, want %d", len(live), lines)
	}
	store, err := audit.Open(l.Database())
	if err != nil {
		t.Fatal(err)
	}
	err = store.Do(context.Background(), func(tx *audit.Tx) error {
		if err := tx.InsertSession(audit.Session{ID: "sess1", User: "alice", Host: "db1", StartedAt: testNow, EndedAt: testNow.Add(time.Minute), RecordingPath: rec, Replica: replica}); err != nil {
			return err
		}
		var first []audit.TextLine
		for _, ln := range live[:indexedBefore] {
			first = append(first, audit.TextLine{SessionID: "sess1", Offset: ln.Offset, Kind: ln.Kind, Text: ln.Text})
		}
		if err := tx.IndexText(first); err != nil {
			return err
		}
		return tx.SetIndexPending("sess1", int64(indexedBefore), testNow)
	})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

package audit

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSearch(t *testing.T) {
	s, _ := openTest(t)
	mustDo(t, s, func(tx *Tx) error {
		for _, sess := range []Session{
			{ID: "old", User: "alice", Host: "db1", StartedAt: at(0)},
			{ID: "new", User: "bob", Host: "web", StartedAt: at(time.Hour)},
		} {
			if err := tx.InsertSession(sess); err != nil {
				return err
			}
		}
		return tx.IndexText([]TextLine{
			{SessionID: "old", Offset: 2 * time.Second, Kind: "i", Text: "sudo rm -rf /var/tmp/cache"},
			{SessionID: "old", Offset: time.Second, Kind: "o", Text: "root@db1:~# SUDO systemctl restart postgres"},
			{SessionID: "new", Offset: 5 * time.Second, Kind: "i", Text: "sudo systemctl status nginx"},
			{SessionID: "new", Offset: 6 * time.Second, Kind: "m", Text: "100% done_ok"},
			{SessionID: "orphan", Offset: 0, Kind: "o", Text: "sudo from a session not in the table"},
			{SessionID: "new", Offset: 7 * time.Second, Kind: "o", Text: "naïve café ünïcode"},
			{SessionID: "new", Offset: 8 * time.Second, Kind: "o", Text: "nul\x00byte"},
		})
	})
	type hit struct {
		session string
		offset  time.Duration
	}
	tests := []struct {
		name    string
		query   SearchQuery
		want    []hit
		wantErr string
	}{
		{name: "grouped by session newest first, then offset", query: SearchQuery{Text: "sudo"},
			want: []hit{{"new", 5 * time.Second}, {"old", time.Second}, {"old", 2 * time.Second}, {"orphan", 0}}},
		{name: "all terms must match", query: SearchQuery{Text: "sudo systemctl"},
			want: []hit{{"new", 5 * time.Second}, {"old", time.Second}}},
		{name: "substring inside a word", query: SearchQuery{Text: "gres"}, want: []hit{{"old", time.Second}}},
		{name: "short term", query: SearchQuery{Text: "rm"}, want: []hit{{"old", 2 * time.Second}}},
		{name: "punctuation and path", query: SearchQuery{Text: "-rf /var/tmp"}, want: []hit{{"old", 2 * time.Second}}},
		{name: "LIKE wildcards are literal", query: SearchQuery{Text: "100%"}, want: []hit{{"new", 6 * time.Second}}},
		{name: "underscore literal", query: SearchQuery{Text: "e_o"}, want: []hit{{"new", 6 * time.Second}}},
		{name: "underscore does not match any char", query: SearchQuery{Text: "sud_"}, want: nil},
		{name: "double quote in term", query: SearchQuery{Text: `"sudo"`}, want: nil},
		{name: "non-ASCII text", query: SearchQuery{Text: "café"}, want: []hit{{"new", 7 * time.Second}}},
		{name: "user filter", query: SearchQuery{Text: "sudo", User: "alice"}, want: []hit{{"old", time.Second}, {"old", 2 * time.Second}}},
		{name: "host filter", query: SearchQuery{Text: "sudo", Host: "web"}, want: []hit{{"new", 5 * time.Second}}},
		{name: "since", query: SearchQuery{Text: "sudo", Since: at(time.Minute)}, want: []hit{{"new", 5 * time.Second}}},
		{name: "until", query: SearchQuery{Text: "sudo", Until: at(time.Minute)}, want: []hit{{"old", time.Second}, {"old", 2 * time.Second}}},
		{name: "limit", query: SearchQuery{Text: "sudo", Limit: 2}, want: []hit{{"new", 5 * time.Second}, {"old", time.Second}}},
		{name: "no match", query: SearchQuery{Text: "shutdown"}, want: nil},
		{name: "NUL dropped from indexed text", query: SearchQuery{Text: "nulbyte"}, want: []hit{{"new", 8 * time.Second}}},
		{name: "NUL in query", query: SearchQuery{Text: "x\x00"}, wantErr: "NUL byte"},
		{name: "empty text", query: SearchQuery{Text: "  "}, wantErr: "text is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Search(context.Background(), tt.query)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Search error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var hits []hit
			for _, h := range got {
				hits = append(hits, hit{h.SessionID, h.Offset})
			}
			if !reflect.DeepEqual(hits, tt.want) {
				t.Errorf("Search(%+v) = %v, want %v", tt.query, hits, tt.want)
			}
		})
	}
}

func TestIndexTextValidation(t *testing.T) {
	tests := []struct {
		name    string
		line    TextLine
		wantErr string
	}{
		{name: "empty session", line: TextLine{Kind: "o", Text: "x"}, wantErr: "session id is empty"},
		{name: "bad kind", line: TextLine{SessionID: "s", Kind: "r", Text: "x"}, wantErr: `kind "r"`},
		{name: "negative offset", line: TextLine{SessionID: "s", Kind: "o", Offset: -1, Text: "x"}, wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTest(t)
			err := s.Do(context.Background(), func(tx *Tx) error {
				return tx.IndexText([]TextLine{{SessionID: "s", Kind: "o", Text: "fine"}, tt.line})
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("IndexText error = %v, want %q", err, tt.wantErr)
			}
			// The valid line before the bad one was rolled back with it.
			hits, err := s.Search(context.Background(), SearchQuery{Text: "fine"})
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) != 0 {
				t.Errorf("Search found %v after a failed IndexText, want nothing", hits)
			}
		})
	}
}

// TestSearchAfterPlainRows covers a file whose text was written by a build
// without FTS5 (rows only in session_text): a reopen indexes them.
func TestSearchAfterPlainRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jitssh.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, s, func(tx *Tx) error {
		return tx.IndexText([]TextLine{{SessionID: "s1", Kind: "o", Text: "indexed normally"}})
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rawDB(t, path).Exec("INSERT INTO session_text (session_id, offset_ns, kind, text) VALUES ('s2', 0, 'i', 'written without fts5')"); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if haveFTS5 {
		var n int
		if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM session_text_fts WHERE session_text_fts MATCH '"without"'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("full-text index has %d rows matching the plain row, want 1", n)
		}
	}
	for _, q := range []string{"normally", "without fts5"} {
		hits, err := s.Search(context.Background(), SearchQuery{Text: q})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 1 {
			t.Errorf("Search(%q) = %v, want one hit", q, hits)
		}
	}
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("a", 100) + "NEEDLE" + strings.Repeat("b", 100)
	tests := []struct {
		name string
		text string
		term string
		want string
	}{
		{name: "short line whole", text: "sudo ls", term: "ls", want: "sudo ls"},
		{name: "cut both sides", text: long, term: "needle",
			want: "…" + strings.Repeat("a", snippetContext) + "NEEDLE" + strings.Repeat("b", snippetContext) + "…"},
		{name: "match at start", text: "NEEDLE" + strings.Repeat("b", 200), term: "needle",
			want: "NEEDLE" + strings.Repeat("b", snippetContext) + "…"},
		{name: "cut on rune boundary", text: strings.Repeat("é", 100) + "x" + strings.Repeat("é", 100), term: "x",
			want: "…" + strings.Repeat("é", 30) + "x" + strings.Repeat("é", 30) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := snippet(tt.text, tt.term); got != tt.want {
				t.Errorf("snippet = %q, want %q", got, tt.want)
			}
		})
	}
}

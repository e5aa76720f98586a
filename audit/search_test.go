package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSearch(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		mustDo(t, s, func(tx *Tx) error {
			for _, sess := range []Session{
				{ID: "old", User: "alice", Host: "db1", StartedAt: at(0)},
				{ID: "new", User: "bob", Host: "web", Login: "deploy", StartedAt: at(time.Hour)},
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
			{name: "login filter", query: SearchQuery{Text: "sudo", Login: "deploy"}, want: []hit{{"new", 5 * time.Second}}},
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
	})
}

func TestIndexTextValidation(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
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
	})
}

// TestSearchAfterPlainRows covers a file whose text was written by a build
// without FTS5 (rows only in session_text_doc): a reopen indexes them.
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
	if _, err := rawDB(t, path).Exec("INSERT INTO session_text_doc (session_id, offset_ns, kind, text) VALUES ('s2', 0, 'i', 'written without fts5')"); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if haveFTS5 {
		var n int
		if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM session_text_doc_fts WHERE session_text_doc_fts MATCH '"wit" AND "out"'`).Scan(&n); err != nil {
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

// TestSearchMigratesLineRows opens a file of schema version 1 (a row per
// line in session_text, and in FTS5 builds the per-line index): its lines
// stay searchable with their offsets, in order with lines indexed later.
func TestSearchMigratesLineRows(t *testing.T) {
	stmts := []string{migrations()[0], "PRAGMA user_version = 1",
		"INSERT INTO sessions (id, started_at) VALUES ('old', 1)",
		"INSERT INTO session_text (session_id, offset_ns, kind, text) VALUES ('old', 3000, 'o', 'tail -f /var/log/syslog'), ('old', 1000, 'i', 'TAIL -n 5 app.log'), ('old', 2000, 'o', 'no match here')",
	}
	if haveFTS5 {
		stmts = append(stmts,
			"CREATE VIRTUAL TABLE session_text_fts USING fts5(text, content = 'session_text', content_rowid = 'id', tokenize = 'trigram')",
			"INSERT INTO session_text_fts (rowid, text) SELECT id, text FROM session_text",
			"INSERT INTO meta (key, value) VALUES ('fts_upto', 3)")
	} else {
		// A file an FTS5 build wrote has the per-line index, which this
		// build cannot load: migration must not touch it.
		stmts = append(stmts, "PRAGMA writable_schema = ON",
			"INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('table', 'session_text_fts', 'session_text_fts', 0, 'CREATE VIRTUAL TABLE session_text_fts USING fts5(text, content = ''session_text'', content_rowid = ''id'', tokenize = ''trigram'')')",
			"PRAGMA writable_schema = OFF")
	}
	s, path := openOld(t, stmts...)
	mustDo(t, s, func(tx *Tx) error {
		return tx.IndexText([]TextLine{{SessionID: "old", Offset: 2500, Kind: "o", Text: "tail of a new line"}})
	})
	hits, err := s.Search(context.Background(), SearchQuery{Text: "tail"})
	if err != nil {
		t.Fatal(err)
	}
	want := []SearchHit{
		{SessionID: "old", Offset: 1000, Kind: "i", Snippet: "TAIL -n 5 app.log"},
		{SessionID: "old", Offset: 2500, Kind: "o", Snippet: "tail of a new line"},
		{SessionID: "old", Offset: 3000, Kind: "o", Snippet: "tail -f /var/log/syslog"},
	}
	if !reflect.DeepEqual(hits, want) {
		t.Errorf("Search after migration = %+v, want %+v", hits, want)
	}
	var n int
	if err := rawDB(t, path).QueryRow("SELECT count(*) FROM sqlite_master WHERE name IN ('session_text', 'session_text_fts')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := 0; haveFTS5 && n != want {
		t.Errorf("%d tables of schema version 1 left, want %d", n, want)
	}
}

// TestSearchDocuments covers lines stored together: each hit reports its
// own line's offset, kind and text, across document splits and calls.
func TestSearchDocuments(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		s, _ := openTest(t)
		long := strings.Repeat("x", 1000)
		var many []TextLine
		for i := range 200 { // about 200 KB: several documents
			text := fmt.Sprintf("line %03d %s", i, long)
			if i%50 == 7 {
				text = fmt.Sprintf("line %03d NEEDLE here", i)
			}
			many = append(many, TextLine{SessionID: "big", Offset: time.Duration(i) * time.Millisecond, Kind: "o", Text: text})
		}
		mustDo(t, s, func(tx *Tx) error {
			if err := tx.InsertSession(Session{ID: "big", StartedAt: at(0)}); err != nil {
				return err
			}
			if err := tx.InsertSession(Session{ID: "mixed", StartedAt: at(time.Hour)}); err != nil {
				return err
			}
			if err := tx.IndexText(many); err != nil {
				return err
			}
			// Input and output interleaved, in two calls, one line with a
			// newline inside it and an empty line.
			if err := tx.IndexText([]TextLine{
				{SessionID: "mixed", Offset: 10, Kind: "o", Text: "$ needle one"},
				{SessionID: "mixed", Offset: 20, Kind: "i", Text: "needle two"},
				{SessionID: "mixed", Offset: 30, Kind: "o", Text: ""},
				{SessionID: "mixed", Offset: 40, Kind: "o", Text: "first half\nneedle after newline"},
			}); err != nil {
				return err
			}
			// The same line again and again: the index holds it once, every
			// copy is a hit at its own offset.
			if err := tx.IndexText([]TextLine{
				{SessionID: "rep", Offset: 1, Kind: "o", Text: "repeated line"},
				{SessionID: "rep", Offset: 2, Kind: "o", Text: "other line"},
				{SessionID: "rep", Offset: 3, Kind: "o", Text: "repeated line"},
				{SessionID: "rep", Offset: 4, Kind: "o", Text: "repeated line"},
			}); err != nil {
				return err
			}
			return tx.IndexText([]TextLine{
				{SessionID: "mixed", Offset: 15, Kind: "i", Text: "needle late"},
				{SessionID: "mixed", Offset: 50, Kind: "m", Text: "needle"},
			})
		})
		type hit struct {
			session string
			offset  time.Duration
			kind    string
			snippet string
		}
		tests := []struct {
			name  string
			query SearchQuery
			want  []hit
		}{
			{name: "every line with its offset", query: SearchQuery{Text: "needle"}, want: []hit{
				{"mixed", 10, "o", "$ needle one"},
				{"mixed", 15, "i", "needle late"},
				{"mixed", 20, "i", "needle two"},
				{"mixed", 40, "o", "first half\nneedle after newline"},
				{"mixed", 50, "m", "needle"},
				{"big", 7 * time.Millisecond, "o", "line 007 NEEDLE here"},
				{"big", 57 * time.Millisecond, "o", "line 057 NEEDLE here"},
				{"big", 107 * time.Millisecond, "o", "line 107 NEEDLE here"},
				{"big", 157 * time.Millisecond, "o", "line 157 NEEDLE here"},
			}},
			{name: "repeated line, each copy", query: SearchQuery{Text: "repeated"}, want: []hit{
				{"rep", 1, "o", "repeated line"}, {"rep", 3, "o", "repeated line"}, {"rep", 4, "o", "repeated line"}}},
			{name: "line after repeats", query: SearchQuery{Text: "other"}, want: []hit{{"rep", 2, "o", "other line"}}},
			{name: "terms in one line, not across lines", query: SearchQuery{Text: "needle one"}, want: []hit{{"mixed", 10, "o", "$ needle one"}}},
			{name: "terms in two lines do not match", query: SearchQuery{Text: "one two"}, want: nil},
			{name: "line of a later document", query: SearchQuery{Text: "line 199"}, want: []hit{
				{"big", 199 * time.Millisecond, "o", "line 199 " + strings.Repeat("x", snippetContext-5) + "…"}}},
			{name: "limit inside a session", query: SearchQuery{Text: "needle", Limit: 6}, want: []hit{
				{"mixed", 10, "o", "$ needle one"},
				{"mixed", 15, "i", "needle late"},
				{"mixed", 20, "i", "needle two"},
				{"mixed", 40, "o", "first half\nneedle after newline"},
				{"mixed", 50, "m", "needle"},
				{"big", 7 * time.Millisecond, "o", "line 007 NEEDLE here"},
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Search(context.Background(), tt.query)
				if err != nil {
					t.Fatal(err)
				}
				var hits []hit
				for _, h := range got {
					hits = append(hits, hit{h.SessionID, h.Offset, h.Kind, h.Snippet})
				}
				if !reflect.DeepEqual(hits, tt.want) {
					t.Errorf("Search(%+v) = %+v, want %+v", tt.query, hits, tt.want)
				}
			})
		}
	})
}

func TestTrigrams(t *testing.T) {
	tests := []struct {
		name  string
		terms []string
		want  []string
	}{
		{name: "short terms none", terms: []string{"rm", "-i"}, want: nil},
		{name: "exact cover", terms: []string{"systemctl"}, want: []string{`"sys"`, `"tem"`, `"ctl"`}},
		{name: "last window overlaps", terms: []string{"restart"}, want: []string{`"res"`, `"tar"`, `"art"`}},
		{name: "runes not bytes, quotes doubled, once", terms: []string{"café", `a"b`, "caf"}, want: []string{`"caf"`, `"afé"`, `"a""b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trigrams(tt.terms); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("trigrams(%q) = %q, want %q", tt.terms, got, tt.want)
			}
		})
	}
}

func TestDocLines(t *testing.T) {
	tests := []struct {
		name    string
		offset  time.Duration
		text    string
		meta    []byte
		want    []docLine
		wantErr string
	}{
		{name: "row from before documents", offset: 5, text: "whole", meta: nil, want: []docLine{{offset: 5, start: 0, end: 5}}},
		{name: "two lines, offsets as deltas", offset: 5, text: "ab\ncde", meta: []byte{0, 2, 6, 3},
			want: []docLine{{offset: 5, start: 0, end: 2}, {offset: 8, start: 3, end: 6}}},
		{name: "empty line", offset: 0, text: "", meta: []byte{0, 0}, want: []docLine{{offset: 0, start: 0, end: 0}}},
		{name: "length past the end", offset: 0, text: "ab", meta: []byte{0, 3}, wantErr: "past the text's end"},
		{name: "truncated", offset: 0, text: "ab", meta: []byte{0}, wantErr: "bad length"},
		{name: "bad varint", offset: 0, text: "ab", meta: []byte{0x80}, wantErr: "bad offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := docLines(nil, tt.offset, len(tt.text), tt.meta)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("docLines error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("docLines = %+v, want %+v", got, tt.want)
			}
		})
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

package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Session text lives in the plain table session_text in every build. Builds
// with FTS5 also keep session_text_fts, an external-content FTS5 index using
// the trigram tokenizer, and record in meta('fts_upto') the last session_text
// id it covers; Open indexes anything newer, so a file written by a build
// without FTS5 is caught up by the next build with it. Both builds search with
// the same meaning: every whitespace-separated term must occur in the line as
// a substring, ignoring ASCII case. FTS5 only narrows the candidate lines
// (terms of three or more characters); LIKE decides.

// TextLine is one searchable line of a session's text.
type TextLine struct {
	SessionID string
	Offset    time.Duration // from the session start
	Kind      string        // "o" output, "i" input, "m" marker
	Text      string
}

// IndexText stores lines for search. SessionID must be non-empty, Kind one of
// "o", "i", "m" and Offset not negative; invalid UTF-8 is replaced by U+FFFD.
func (t *Tx) IndexText(lines []TextLine) error {
	if err := t.check(); err != nil {
		return err
	}
	var last int64
	for i, l := range lines {
		if l.SessionID == "" {
			return fmt.Errorf("index text line %d: session id is empty", i)
		}
		if l.Kind != "o" && l.Kind != "i" && l.Kind != "m" {
			return fmt.Errorf("index text line %d of session %q: kind %q is not o, i or m", i, l.SessionID, l.Kind)
		}
		if l.Offset < 0 {
			return fmt.Errorf("index text line %d of session %q: offset %s is negative", i, l.SessionID, l.Offset)
		}
		// NUL would end the text for LIKE; terminals ignore it anyway.
		text := strings.ReplaceAll(clean(l.Text), "\x00", "")
		res, err := t.exec("INSERT INTO session_text (session_id, offset_ns, kind, text) VALUES (?, ?, ?, ?)",
			l.SessionID, int64(l.Offset), l.Kind, text)
		if err != nil {
			return fmt.Errorf("index text of session %q: %w", l.SessionID, err)
		}
		if last, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("index text of session %q: %w", l.SessionID, err)
		}
		if haveFTS5 {
			if _, err := t.exec("INSERT INTO session_text_fts (rowid, text) VALUES (?, ?)", last, text); err != nil {
				return fmt.Errorf("index text of session %q: full-text index: %w", l.SessionID, err)
			}
		}
	}
	if haveFTS5 && last != 0 {
		if err := setFTSUpto(t.tx, last); err != nil {
			return fmt.Errorf("index text: %w", err)
		}
	}
	return nil
}

type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
}

func setFTSUpto(tx execer, id int64) error {
	_, err := tx.Exec(`INSERT INTO meta (key, value) VALUES ('fts_upto', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, id)
	return err
}

// catchUpFTS creates the FTS5 index if needed and indexes every session_text
// row it does not cover yet. Without FTS5 it does nothing.
func catchUpFTS(ctx context.Context, db *sql.DB) error {
	if !haveFTS5 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("full-text index: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`CREATE VIRTUAL TABLE IF NOT EXISTS session_text_fts USING fts5(
		text, content = 'session_text', content_rowid = 'id', tokenize = 'trigram')`); err != nil {
		return fmt.Errorf("full-text index: create: %w", err)
	}
	var upto int64
	if err := tx.QueryRow("SELECT value FROM meta WHERE key = 'fts_upto'").Scan(&upto); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("full-text index: %w", err)
	}
	var maxID int64
	if err := tx.QueryRow("SELECT COALESCE(MAX(id), 0) FROM session_text").Scan(&maxID); err != nil {
		return fmt.Errorf("full-text index: %w", err)
	}
	if maxID > upto {
		if _, err := tx.Exec("INSERT INTO session_text_fts (rowid, text) SELECT id, text FROM session_text WHERE id > ?", upto); err != nil {
			return fmt.Errorf("full-text index: catch up from id %d: %w", upto, err)
		}
		if err := setFTSUpto(tx, maxID); err != nil {
			return fmt.Errorf("full-text index: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("full-text index: %w", err)
	}
	return nil
}

// SearchQuery selects session text lines.
type SearchQuery struct {
	Text       string    // required: whitespace-separated terms, all must occur
	User, Host string    // of the session; empty does not filter
	Since      time.Time // session StartedAt >= Since
	Until      time.Time // session StartedAt < Until
	Limit      int       // maximum hits; <= 0: no limit
}

// SearchHit is one matching line.
type SearchHit struct {
	SessionID string
	Offset    time.Duration
	Kind      string
	Snippet   string // the line, shortened around the first match when long
}

// Search returns the lines that contain every term of q.Text, grouped by
// session (newest session start first; lines of sessions not recorded in the
// sessions table last) and ordered by offset within a session. Terms match as
// substrings ignoring ASCII case.
func (s *Store) Search(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	terms := strings.Fields(q.Text)
	if len(terms) == 0 {
		return nil, errors.New("search: text is empty")
	}
	// SQLite's LIKE stops at a NUL, which would turn the pattern into "%".
	if strings.ContainsRune(q.Text, 0) {
		return nil, fmt.Errorf("search %q: text contains a NUL byte", q.Text)
	}
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	var w where
	var cd codec
	if haveFTS5 {
		var phrases []string
		for _, term := range terms {
			if utf8.RuneCountInString(term) >= 3 {
				phrases = append(phrases, `"`+strings.ReplaceAll(term, `"`, `""`)+`"`)
			}
		}
		if len(phrases) > 0 {
			w.add("st.id IN (SELECT rowid FROM session_text_fts WHERE session_text_fts MATCH ?)", strings.Join(phrases, " AND "))
		}
	}
	for _, term := range terms {
		w.add(`st.text LIKE ? ESCAPE '\'`, "%"+escapeLike(term)+"%")
	}
	w.eq("s.user", q.User)
	w.eq("s.host", q.Host)
	if !q.Since.IsZero() {
		w.add("s.started_at >= ?", cd.nanos("since", q.Since))
	}
	if !q.Until.IsZero() {
		w.add("s.started_at < ?", cd.nanos("until", q.Until))
	}
	if cd.err != nil {
		return nil, fmt.Errorf("search: %w", cd.err)
	}
	rows, err := db.QueryContext(ctx, `SELECT st.session_id, st.offset_ns, st.kind, st.text
		FROM session_text st LEFT JOIN sessions s ON s.id = st.session_id`+w.sql()+`
		ORDER BY COALESCE(s.started_at, 0) DESC, st.session_id, st.offset_ns, st.id`+clampLimit(q.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", q.Text, err)
	}
	defer rows.Close()
	var out []SearchHit
	for rows.Next() {
		var h SearchHit
		var off int64
		var text string
		if err := rows.Scan(&h.SessionID, &off, &h.Kind, &text); err != nil {
			return nil, fmt.Errorf("search %q: %w", q.Text, err)
		}
		h.Offset = time.Duration(off)
		h.Snippet = snippet(text, terms[0])
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search %q: %w", q.Text, err)
	}
	return out, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// snippetContext is how many bytes of context a snippet keeps on each side of
// the match.
const snippetContext = 60

// snippet returns text, cut to the first match of term with some context on
// either side when text is long; "…" marks a cut.
func snippet(text, term string) string {
	if len(text) <= 2*snippetContext+len(term) {
		return text
	}
	i := strings.Index(asciiLower(text), asciiLower(term))
	if i < 0 {
		i = 0
	}
	start, end := i-snippetContext, i+len(term)+snippetContext
	prefix, suffix := "…", "…"
	if start <= 0 {
		start, prefix = 0, ""
	}
	if end >= len(text) {
		end, suffix = len(text), ""
	}
	for start > 0 && !utf8.RuneStart(text[start]) {
		start--
	}
	for end < len(text) && !utf8.RuneStart(text[end]) {
		end++
	}
	return prefix + text[start:end] + suffix
}

// asciiLower lower-cases ASCII letters only, keeping byte offsets intact
// (and matching SQLite's LIKE, which folds ASCII case only).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

package audit

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Session text lives in the plain table session_text_doc in every build, as
// documents: the lines of one session and kind given to one IndexText call,
// joined by "\n" (up to docMaxBytes each), with each line's offset and byte
// length in the lines column. A row per line cost more in row and index
// upkeep than the text itself; a document costs one row per flush. Builds
// with FTS5 also keep session_text_doc_fts, an external-content FTS5 index
// using the trigram tokenizer without positions (detail=none: which
// trigrams each document holds, each repeated line indexed once), and record in meta('doc_fts_upto') the last
// document id it covers; Open indexes anything newer, so a file written by a
// build without FTS5 is caught up by the next build with it. Both builds
// search with the same meaning: every whitespace-separated term must occur in
// the line as a substring, ignoring ASCII case. FTS5 (terms of three or more
// characters) and LIKE only narrow the candidate documents; Search decides
// line by line.

// docMaxBytes bounds the text of one document, so that a hit in a long
// output costs a bounded amount of line splitting.
const docMaxBytes = 64 << 10

// TextLine is one searchable line of a session's text.
type TextLine struct {
	SessionID string
	Offset    time.Duration // from the session start
	Kind      string        // "o" output, "i" input, "m" marker
	Text      string
}

// IndexText stores lines for search. SessionID must be non-empty, Kind one of
// "o", "i", "m" and Offset not negative; invalid UTF-8 is replaced by U+FFFD
// and NUL bytes are dropped. Each line stays searchable on its own with its
// own offset; lines of one session and kind are stored together, so one
// call with many lines is much cheaper than many calls with few.
func (t *Tx) IndexText(lines []TextLine) error {
	if err := t.check(); err != nil {
		return err
	}
	groups, err := groupText(lines)
	if err != nil {
		return err
	}
	var last int64
	d := docBuilder{seen: make(map[string]bool)}
	for _, g := range groups {
		for i := 0; i < len(g.lines); {
			i = d.fill(lines, g.lines, i)
			if last, err = t.insertDoc(g, &d); err != nil {
				return err
			}
		}
	}
	if t.engine.fts5() && last != 0 {
		if err := setFTSUpto(t.tx, last); err != nil {
			return fmt.Errorf("index text: %w", err)
		}
	}
	return nil
}

// textGroup is the lines of one IndexText call of one session and kind.
type textGroup struct {
	session, kind string
	lines         []int // indexes into the call's lines, in order
}

// groupText checks lines and groups them by session and kind, the groups in
// the order their first line comes.
func groupText(lines []TextLine) ([]*textGroup, error) {
	var groups []*textGroup
	byKey := make(map[[2]string]*textGroup)
	for i, l := range lines {
		if l.SessionID == "" {
			return nil, fmt.Errorf("index text line %d: session id is empty", i)
		}
		if l.Kind != "o" && l.Kind != "i" && l.Kind != "m" {
			return nil, fmt.Errorf("index text line %d of session %q: kind %q is not o, i or m", i, l.SessionID, l.Kind)
		}
		if l.Offset < 0 {
			return nil, fmt.Errorf("index text line %d of session %q: offset %s is negative", i, l.SessionID, l.Offset)
		}
		k := [2]string{l.SessionID, l.Kind}
		g := byKey[k]
		if g == nil {
			g = &textGroup{session: l.SessionID, kind: l.Kind}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.lines = append(g.lines, i)
	}
	return groups, nil
}

// docBuilder assembles one document at a time, reusing its buffers.
type docBuilder struct {
	text     strings.Builder // the lines joined by "\n"
	distinct strings.Builder // the same without repeated lines, for FTS5
	meta     []byte          // each line's offset delta and length
	seen     map[string]bool
	first    time.Duration // offset of the first line
}

// fill starts a new document with lines[idx[i]] and adds the lines after
// it until the document would pass docMaxBytes; it returns the position in
// idx of the first line left out.
func (d *docBuilder) fill(lines []TextLine, idx []int, i int) int {
	d.text.Reset()
	d.distinct.Reset()
	clear(d.seen)
	d.meta = d.meta[:0]
	d.first = lines[idx[i]].Offset
	prev := d.first
	for ; i < len(idx); i++ {
		l := lines[idx[i]]
		// NUL would end the text for LIKE; terminals ignore it anyway.
		lt := strings.ReplaceAll(clean(l.Text), "\x00", "")
		if d.text.Len() > 0 && d.text.Len()+1+len(lt) > docMaxBytes {
			break
		}
		if d.text.Len() > 0 {
			d.text.WriteByte('\n')
		}
		d.text.WriteString(lt)
		if !d.seen[lt] {
			d.seen[lt] = true
			if d.distinct.Len() > 0 {
				d.distinct.WriteByte('\n')
			}
			d.distinct.WriteString(lt)
		}
		d.meta = binary.AppendVarint(d.meta, int64(l.Offset-prev))
		d.meta = binary.AppendUvarint(d.meta, uint64(len(lt)))
		prev = l.Offset
	}
	return i
}

// insertDoc stores the document d holds for group g, and indexes it with
// FTS5 when the build has it; it returns the document's id.
func (t *Tx) insertDoc(g *textGroup, d *docBuilder) (int64, error) {
	const insert = "INSERT INTO session_text_doc (session_id, kind, offset_ns, text, lines) VALUES (?, ?, ?, ?, ?)"
	var id int64
	if t.engine == enginePostgres {
		// No LastInsertId there; and the trigram index (pg_trgm) is kept
		// by PostgreSQL itself.
		err := t.tx.QueryRow(insert+" RETURNING id", g.session, g.kind, int64(d.first), d.text.String(), d.meta).Scan(&id)
		if err != nil {
			return 0, fmt.Errorf("index text of session %q: %w", g.session, err)
		}
		return id, nil
	}
	res, err := t.exec(insert, g.session, g.kind, int64(d.first), d.text.String(), d.meta)
	if err != nil {
		return 0, fmt.Errorf("index text of session %q: %w", g.session, err)
	}
	if id, err = res.LastInsertId(); err != nil {
		return 0, fmt.Errorf("index text of session %q: %w", g.session, err)
	}
	if haveFTS5 {
		// The index keeps which trigrams occur, not where or how often,
		// so a repeated line adds nothing to it but work. The trigrams
		// that differ (across a line break) hold a "\n", which no query
		// term has.
		if _, err := t.exec("INSERT INTO session_text_doc_fts (rowid, text) VALUES (?, ?)", id, d.distinct.String()); err != nil {
			return 0, fmt.Errorf("index text of session %q: full-text index: %w", g.session, err)
		}
	}
	return id, nil
}

// docLine is one line of a stored document: its offset and its byte range
// in the document's text.
type docLine struct {
	offset     time.Duration
	start, end int
}

// docLines decodes a document's lines column. A NULL column (a row from
// before documents) is one line: the whole text at the row's offset.
// They are appended to out (so that a caller can reuse one slice); textLen
// is the length of the document's text.
func docLines(out []docLine, offset time.Duration, textLen int, meta []byte) ([]docLine, error) {
	if meta == nil {
		return append(out, docLine{offset: offset, start: 0, end: textLen}), nil
	}
	first := len(out)
	pos := 0
	for len(meta) > 0 {
		d, n := binary.Varint(meta)
		if n <= 0 {
			return nil, fmt.Errorf("line %d: bad offset", len(out)-first)
		}
		meta = meta[n:]
		size, n := binary.Uvarint(meta)
		if n <= 0 {
			return nil, fmt.Errorf("line %d: bad length", len(out)-first)
		}
		meta = meta[n:]
		if len(out) > first {
			pos++ // the "\n" between lines
		}
		if size > uint64(textLen-pos) {
			return nil, fmt.Errorf("line %d: length %d past the text's end", len(out)-first, size)
		}
		offset += time.Duration(d)
		out = append(out, docLine{offset: offset, start: pos, end: pos + int(size)})
		pos += int(size)
	}
	return out, nil
}

type execer interface {
	Exec(query string, args ...any) (sql.Result, error)
}

func setFTSUpto(tx execer, id int64) error {
	_, err := tx.Exec(`INSERT INTO meta (key, value) VALUES ('doc_fts_upto', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, id)
	return err
}

// catchUpFTS creates the FTS5 index if needed and indexes every
// session_text_doc row it does not cover yet. It also drops the line index
// of schema version 1, whose rows migration 2 moved. Without FTS5 it does
// nothing.
func catchUpFTS(ctx context.Context, db *sql.DB) error {
	if !haveFTS5 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("full-text index: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("DROP TABLE IF EXISTS session_text_fts"); err != nil {
		return fmt.Errorf("full-text index: drop the per-line index: %w", err)
	}
	if _, err := tx.Exec(`CREATE VIRTUAL TABLE IF NOT EXISTS session_text_doc_fts USING fts5(
		text, content = 'session_text_doc', content_rowid = 'id', tokenize = 'trigram', detail = 'none')`); err != nil {
		return fmt.Errorf("full-text index: create: %w", err)
	}
	var upto int64
	if err := tx.QueryRow("SELECT value FROM meta WHERE key = 'doc_fts_upto'").Scan(&upto); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("full-text index: %w", err)
	}
	var maxID int64
	if err := tx.QueryRow("SELECT COALESCE(MAX(id), 0) FROM session_text_doc").Scan(&maxID); err != nil {
		return fmt.Errorf("full-text index: %w", err)
	}
	if maxID > upto {
		if _, err := tx.Exec("INSERT INTO session_text_doc_fts (rowid, text) SELECT id, text FROM session_text_doc WHERE id > ?", upto); err != nil {
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
	Login      string    // the session's target account; empty does not filter
	Since      time.Time // session StartedAt >= Since
	Until      time.Time // session StartedAt < Until
	Limit      int       // maximum hits; <= 0: no limit
}

// SearchHit is one matching line.
type SearchHit struct {
	SessionID string
	Offset    time.Duration // of the matching line, from the session start
	Kind      string
	Snippet   string // the line, shortened around the first match when long
}

// Search returns the lines that contain every term of q.Text, grouped by
// session (newest session start first; lines of sessions not recorded in the
// sessions table last) and ordered by offset within a session (lines at the
// same offset in the order they were indexed). Terms match as substrings
// ignoring ASCII case.
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
	w, err := searchWhere(s.engine, q, terms)
	if err != nil {
		return nil, err
	}
	// The hits are sorted here: SQLite would sort whole documents, far more
	// bytes. With a limit, SQLite orders the documents by session so that
	// reading can stop at the first session after the limit is reached.
	order := ""
	if q.Limit > 0 {
		order = " ORDER BY COALESCE(s.started_at, 0) DESC, d.session_id"
	}
	rows, err := db.QueryContext(ctx, `SELECT COALESCE(s.started_at, 0), d.id, d.session_id, d.kind, d.offset_ns, d.text, d.lines
		FROM session_text_doc d LEFT JOIN sessions s ON s.id = d.session_id`+w.sql()+order, w.args...)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", q.Text, err)
	}
	defer rows.Close()
	all, err := scanHits(rows, q, terms)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", q.Text, err)
	}
	slices.SortFunc(all, func(a, b foundLine) int {
		return cmp.Or(cmp.Compare(b.started, a.started), strings.Compare(a.hit.SessionID, b.hit.SessionID),
			cmp.Compare(a.hit.Offset, b.hit.Offset), cmp.Compare(a.doc, b.doc), cmp.Compare(a.line, b.line))
	})
	if q.Limit > 0 && len(all) > q.Limit {
		all = all[:q.Limit]
	}
	var out []SearchHit
	for _, f := range all {
		out = append(out, f.hit)
	}
	return out, nil
}

// searchWhere is the condition that narrows the documents Search reads.
func searchWhere(eng engine, q SearchQuery, terms []string) (where, error) {
	var w where
	var cd codec
	// With FTS5, terms of three or more characters narrow by trigrams and
	// shorter ones by LIKE; without it every term narrows by LIKE. On
	// PostgreSQL every term narrows by ILIKE (its LIKE minds case, SQLite's
	// does not), which the pg_trgm index of migration 2 serves. Either way
	// the line check in scanHits decides, so the hits are the same.
	likeTerms := terms
	like := "LIKE"
	if eng == enginePostgres {
		like = "ILIKE"
	}
	if eng.fts5() {
		likeTerms = nil
		for _, term := range terms {
			if utf8.RuneCountInString(term) < 3 {
				likeTerms = append(likeTerms, term)
			}
		}
		phrases := trigrams(terms)
		if len(phrases) > 0 {
			w.add("d.id IN (SELECT rowid FROM session_text_doc_fts WHERE session_text_doc_fts MATCH ?)", strings.Join(phrases, " AND "))
		}
	}
	for _, term := range likeTerms {
		w.add(`d.text `+like+` ? ESCAPE '\'`, "%"+escapeLike(term)+"%")
	}
	w.eq("s.user", q.User)
	w.eq("s.host", q.Host)
	w.eq("s.login", q.Login)
	if !q.Since.IsZero() {
		w.add("s.started_at >= ?", cd.nanos("since", q.Since))
	}
	if !q.Until.IsZero() {
		w.add("s.started_at < ?", cd.nanos("until", q.Until))
	}
	if cd.err != nil {
		return where{}, fmt.Errorf("search: %w", cd.err)
	}
	return w, nil
}

// foundLine is a hit with what Search sorts it by.
type foundLine struct {
	started, doc int64
	line         int
	hit          SearchHit
}

// scanHits reads the candidate documents of rows and returns their lines
// that hold every term, stopping early once q.Limit hits are found and the
// documents move on to another session.
func scanHits(rows *sql.Rows, q SearchQuery, terms []string) ([]foundLine, error) {
	lowered := make([][]byte, len(terms))
	for i, term := range terms {
		lowered[i] = appendASCIILower(nil, []byte(term))
	}
	var all []foundLine
	// Text and lines are read in place (RawBytes) and the buffers reused:
	// a common term reads many documents, and copying them was most of
	// the cost of such a search.
	var lines []docLine
	var lower []byte
	for rows.Next() {
		var started, id, off int64
		var session, kind string
		var text, meta sql.RawBytes
		if err := rows.Scan(&started, &id, &session, &kind, &off, &text, &meta); err != nil {
			return nil, err
		}
		if q.Limit > 0 && len(all) >= q.Limit && session != all[len(all)-1].hit.SessionID {
			break // every later hit sorts after the ones found
		}
		var err error
		if lines, err = docLines(lines[:0], time.Duration(off), len(text), meta); err != nil {
			return nil, fmt.Errorf("text document %d of session %q: %w", id, session, err)
		}
		lower = appendASCIILower(lower[:0], text)
	line:
		for i, l := range lines {
			for _, term := range lowered {
				if !bytes.Contains(lower[l.start:l.end], term) {
					continue line
				}
			}
			all = append(all, foundLine{started: started, doc: id, line: i,
				hit: SearchHit{SessionID: session, Offset: l.offset, Kind: kind, Snippet: snippet(string(text[l.start:l.end]), terms[0])}})
		}
	}
	return all, rows.Err()
}

// trigrams returns the FTS5 query phrases for terms: three-character windows
// covering every term of three or more characters, quoted, once. The index
// keeps no positions (detail=none: positions of every trigram of every line
// were most of its cost), so a document matches when it holds every trigram
// anywhere; LIKE and the line check then decide.
func trigrams(terms []string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, term := range terms {
		r := []rune(term)
		if len(r) < 3 {
			continue
		}
		// Every third window and the last cover the term: fewer doclists
		// to intersect for about the same candidates.
		var starts []int
		for i := 0; i+3 <= len(r); i += 3 {
			starts = append(starts, i)
		}
		if last := len(r) - 3; last%3 != 0 {
			starts = append(starts, last)
		}
		for _, i := range starts {
			g := string(r[i : i+3])
			if seen[g] {
				continue
			}
			seen[g] = true
			out = append(out, `"`+strings.ReplaceAll(g, `"`, `""`)+`"`)
		}
	}
	return out
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

// appendASCIILower appends b to dst with ASCII letters lower-cased, as
// asciiLower does.
func appendASCIILower(dst, b []byte) []byte {
	n := len(dst)
	dst = append(dst, b...)
	for i, c := range dst[n:] {
		if 'A' <= c && c <= 'Z' {
			dst[n+i] = c + 'a' - 'A'
		}
	}
	return dst
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

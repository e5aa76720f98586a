//go:build sqlite_fts5 || fts5

package audit

// haveFTS5 reports whether the linked SQLite has FTS5 (mattn/go-sqlite3
// builds it in with the sqlite_fts5 or fts5 tag).
const haveFTS5 = true

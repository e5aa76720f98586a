package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// SessionMarkers returns the marker lines (kind "m") indexed for session
// id, by offset (markers at one offset in the order they were indexed): at
// most limit of them (limit <= 0: all), and how many more there are. These
// are what the bastion marked in the recording (the command, file
// transfers with their byte counts, forwarding, the exit status, why the
// session ended), as the search index holds them: invalid UTF-8 replaced,
// NUL bytes dropped. An unknown session has none.
func (s *Store) SessionMarkers(ctx context.Context, id string, limit int) (lines []TextLine, more int, err error) {
	db, err := s.reader()
	if err != nil {
		return nil, 0, err
	}
	rows, err := db.QueryContext(ctx, "SELECT offset_ns, text, lines FROM session_text_doc WHERE session_id = ? AND kind = 'm' ORDER BY id", id)
	if err != nil {
		return nil, 0, fmt.Errorf("markers of session %q: %w", id, err)
	}
	defer rows.Close()
	var dl []docLine
	for rows.Next() {
		var off int64
		var text string
		var meta []byte
		if err := rows.Scan(&off, &text, &meta); err != nil {
			return nil, 0, fmt.Errorf("markers of session %q: %w", id, err)
		}
		if dl, err = docLines(dl[:0], time.Duration(off), len(text), meta); err != nil {
			return nil, 0, fmt.Errorf("markers of session %q: document at %d: %w", id, off, err)
		}
		for _, l := range dl {
			lines = append(lines, TextLine{SessionID: id, Offset: l.offset, Kind: "m", Text: text[l.start:l.end]})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("markers of session %q: %w", id, err)
	}
	slices.SortStableFunc(lines, func(a, b TextLine) int { return cmp.Compare(a.Offset, b.Offset) })
	if limit > 0 && len(lines) > limit {
		more = len(lines) - limit
		lines = lines[:limit]
	}
	return lines, more, nil
}

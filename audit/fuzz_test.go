package audit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzSearch feeds arbitrary query text (outside input from the API) to
// Search: it must never fail on syntax, and every hit must contain every term.
func FuzzSearch(f *testing.F) {
	for _, seed := range []string{"sudo", `"`, `a" OR "b`, "NEAR(a b)", "col:x", "-rf *", "^x", "\xff\xfe", "%_\\", "  x  y  "} {
		f.Add(seed)
	}
	s, err := Open(filepath.Join(f.TempDir(), "jitssh.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	lines := []TextLine{
		{SessionID: "s1", Kind: "i", Text: `sudo rm -rf /tmp/x "quoted" NEAR(a b) col:x 100%_\`},
		{SessionID: "s1", Kind: "o", Offset: time.Second, Text: "ünïcode ÉCOLE ^x * OR AND NOT"},
	}
	if err := s.Do(context.Background(), func(tx *Tx) error { return tx.IndexText(lines) }); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		hits, err := s.Search(context.Background(), SearchQuery{Text: text})
		terms := strings.Fields(text)
		if len(terms) == 0 || strings.ContainsRune(text, 0) {
			if err == nil {
				t.Fatalf("Search(%q) succeeded, want an error for no terms or a NUL", text)
			}
			return
		}
		if err != nil {
			t.Fatalf("Search(%q): %v", text, err)
		}
		for _, h := range hits {
			line := lines[0].Text
			if h.Kind == "o" {
				line = lines[1].Text
			}
			for _, term := range terms {
				if !strings.Contains(asciiLower(line), asciiLower(clean(term))) {
					t.Errorf("Search(%q) hit %q does not contain %q", text, line, term)
				}
			}
		}
	})
}

package testkit

import (
	"strings"
	"testing"
)

// BadPolicy is a policy file that fails to parse at its line 2, where user
// alice has the unknown field "colour": the fixture of the tests that a
// bad file is refused, naming its line, and the last good policy stays.
const BadPolicy = "users:\n  alice: {groups: [dev], colour: blue}\n"

// Edit returns text with each pair of edits (old, new) applied in turn,
// each to the first place old stands. It fails t when an old is not in the
// text by its turn, or the edits do not pair up, so that an edit of a
// fixture cannot silently not happen.
func Edit(t testing.TB, text string, edits ...string) string {
	t.Helper()
	if len(edits)%2 != 0 {
		t.Fatalf("testkit.Edit: %d edit strings, want (old, new) pairs", len(edits))
	}
	for i := 0; i < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			t.Fatalf("testkit.Edit: %q is not in the text", edits[i])
		}
		text = strings.Replace(text, edits[i], edits[i+1], 1)
	}
	return text
}

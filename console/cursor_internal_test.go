package console

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestCursorChain: windows read on from the last window's cursor (as the
// server does for a playing page) are byte for byte the windows read
// from the start.
func TestCursorChain(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"version": 2, "width": 80, "height": 24}` + "\n")
	for i := range 300 {
		fmt.Fprintf(&b, "[%d.5, \"o\", \"line %d\\r\\n\"]\n", i, i)
		if i == 150 {
			b.WriteString(`[150.7, "r", "100x30"]` + "\n")
		}
	}
	rec := b.String()
	c, err := newCursor(strings.NewReader(rec))
	if err != nil {
		t.Fatal(err)
	}
	from := 0.0
	for n := 0; n < 100; n++ {
		var chained, fresh bytes.Buffer
		if !c.usableFor(from) {
			t.Fatalf("cursor not usable for the next window at %v", from)
		}
		win, err := c.window(context.Background(), &chained, from, 7)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := WriteWindow(&fresh, strings.NewReader(rec), from, 7); err != nil {
			t.Fatal(err)
		}
		if chained.String() != fresh.String() {
			t.Fatalf("window at %v from the cursor:\n%s\nfrom the start:\n%s", from, chained.String(), fresh.String())
		}
		if win.EOF {
			if from < 290 {
				t.Errorf("EOF at window %v", from)
			}
			return
		}
		from = win.End
	}
	t.Fatal("no EOF after 100 windows")
}

package audit_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jitssh/jitssh/audit"
)

func TestBoundText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{name: "short", in: "web1", max: 8, want: "web1"},
		{name: "exactly max", in: "abcdefgh", max: 8, want: "abcdefgh"},
		{name: "cut", in: "abcdefghij", max: 8, want: "abcdefgh..."},
		{name: "cut before a split character", in: "abcdefg" + "é" + "xyz", max: 8, want: "abcdefg..."},
		{name: "cut before a split 4-byte character", in: "abcdef" + "😀", max: 8, want: "abcdef..."},
		{name: "invalid UTF-8 made valid", in: "a\xffb", max: 8, want: "a\uFFFDb"},
		{name: "empty", in: "", max: 8, want: ""},
		{name: "megabyte", in: strings.Repeat("x", 1<<20), max: 128, want: strings.Repeat("x", 128) + "..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := audit.BoundText(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("BoundText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("BoundText(%q) = %q is not valid UTF-8", tc.in, got)
			}
		})
	}
}

package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/sessionlog"
)

// printMarkers writes a session's markers, one a line with its offset, as
// jit sessions show shows them. Markers carry text from outside (file
// names, signal names), so each is neutralised for the terminal and kept
// on its line.
func printMarkers(w io.Writer, ms []api.SessionMarker, more int, id string) {
	if len(ms) == 0 {
		return
	}
	fmt.Fprintln(w, "markers")
	for _, m := range ms {
		fmt.Fprintf(w, "  %9s  %s\n", fmtOffset(m.Offset), oneLine(m.Text))
	}
	if more > 0 {
		fmt.Fprintf(w, "  (%d more: jit sessions export %s --format text)\n", more, id)
	}
}

// oneLine is s safe for a terminal on one line: line breaks as spaces
// (as in the text export), escape sequences removed, and every other
// control or format character (C1 controls, bidi overrides) shown as
// U+FFFD.
func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	s = strings.TrimSuffix(sessionlog.StripANSI(s), "\n")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

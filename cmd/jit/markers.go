package main

import (
	"fmt"
	"io"

	"github.com/jitssh/jitssh/api"
)

// printMarkers writes a session's markers, one a line with its offset, as
// jit sessions show shows them. Markers carry text from outside (file
// names, signal names), so each goes through jit's text choke point
// (textLine): neutralised for the terminal and kept on its line.
func printMarkers(w io.Writer, ms []api.SessionMarker, more int, id string) {
	if len(ms) == 0 {
		return
	}
	fmt.Fprintln(w, "markers")
	for _, m := range ms {
		linef(w, "  %9s  %s", fmtOffset(m.Offset), m.Text)
	}
	if more > 0 {
		fmt.Fprintf(w, "  (%d more: jit sessions export %s --format text)\n", more, id)
	}
}

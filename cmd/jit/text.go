package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/jitssh/jitssh/sessionlog"
)

// maxTextLine bounds one line of jit's text output, in bytes: a 100 KB
// command or user name sent to the bastion is shown cut, with an ellipsis
// saying how much was left out. --format json is never cut.
const maxTextLine = 4096

// textLine is the one choke point of jit's text output: every line that
// holds text from outside (names, hosts, commands, reasons, messages, the
// server's error texts) passes through it. Controls, escape sequences, C1
// controls, bidi overrides and newlines inside the line are shown as
// visible escapes (sessionlog.Field), so nothing a client or target sent
// can drive the terminal or fake a row, and the line is bounded.
func textLine(s string) string {
	return sessionlog.Field(s, maxTextLine)
}

// linef writes one neutralised line of text output (textLine) and a
// newline.
func linef(w io.Writer, format string, args ...any) {
	fmt.Fprintln(w, textLine(fmt.Sprintf(format, args...)))
}

// printError writes an error message to stderr after prefix, one
// neutralised line per line of the message; lines after the first are
// indented, so a message cannot fake a line of jit's own ("jit: hint: ...").
func printError(w io.Writer, prefix, msg string) {
	for i, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		if i == 0 {
			fmt.Fprintln(w, prefix, textLine(line))
			continue
		}
		fmt.Fprintln(w, "   ", textLine(line))
	}
}

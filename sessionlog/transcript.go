package sessionlog

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteTranscript writes a readable plain-text transcript of rec: one line
// per non-blank output line, prefixed with the offset where the line
// started, "[HH:MM:SS.mmm] text", with escape sequences stripped; markers as
// "[HH:MM:SS.mmm] # marker: label". Input and resize events are left out:
// the terminal echoes what should be seen, and input may hold passwords.
// A truncated recording ends with a note saying so.
func WriteTranscript(w io.Writer, rec *Recording) error {
	bw := bufio.NewWriter(w)
	emit := func(text string, start time.Duration) {
		text = strings.TrimRight(text, " \t")
		if strings.TrimSpace(text) == "" {
			return
		}
		fmt.Fprintf(bw, "[%s] %s\n", formatOffset(start), text)
	}
	var p ansiParser
	lb := lineBuilder{emit: emit}
	for _, e := range rec.Events {
		off := secondsToDuration(e.Time)
		switch e.Code {
		case CodeOutput:
			lb.now = off
			p.feed(e.Data, &lb)
		case CodeMarker:
			fmt.Fprintf(bw, "[%s] # marker: %s\n", formatOffset(off), StripANSI(strings.ReplaceAll(e.Data, "\n", " ")))
		}
	}
	p.flush(&lb)
	lb.end()
	if rec.Truncated {
		fmt.Fprintf(bw, "[%s] # recording truncated here\n", formatOffset(rec.Length()))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write transcript: %w", err)
	}
	return nil
}

// formatOffset formats d as HH:MM:SS.mmm (hours may exceed two digits).
func formatOffset(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

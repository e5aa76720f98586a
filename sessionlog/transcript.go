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
// "[HH:MM:SS.mmm] # marker: label" (after the line being written when the
// marker came, so that times never go back). Binary output (consecutive
// CodeBinaryOutput events together) is one line "[HH:MM:SS.mmm] [N bytes
// of binary output]", ending the text line before it; Event.Bytes gets the
// bytes back. Input and resize events are left out:
// the terminal echoes what should be seen, and input may hold passwords.
// A truncated recording ends with a note saying so.
func WriteTranscript(w io.Writer, rec *Recording) error {
	bw := bufio.NewWriter(w)
	var p ansiParser
	// Markers that arrive while a line is being written follow that line,
	// so that times only go forward.
	var held []string
	lb := lineBuilder{emit: func(text string, start time.Duration) {
		text = strings.TrimRight(text, " \t")
		if strings.TrimSpace(text) != "" {
			fmt.Fprintf(bw, "[%s] %s\n", formatOffset(start), text)
		}
		for _, m := range held {
			bw.WriteString(m)
		}
		held = held[:0]
	}}
	// A run of binary events is noted once, when it ends.
	var binBytes int
	var binAt time.Duration
	endBinary := func() {
		if binBytes > 0 {
			unit := "bytes"
			if binBytes == 1 {
				unit = "byte"
			}
			fmt.Fprintf(bw, "[%s] [%d %s of binary output]\n", formatOffset(binAt), binBytes, unit)
			binBytes = 0
		}
	}
	for _, e := range rec.Events {
		off := secondsToDuration(e.Time)
		switch e.Code {
		case CodeBinaryOutput:
			if binBytes == 0 {
				p.flush(&lb)
				lb.end()
				binAt = off
			}
			binBytes += base64Len(e.Data)
		case CodeOutput:
			endBinary()
			lb.now = off
			p.feed(e.Data, &lb)
		case CodeMarker:
			endBinary()
			m := fmt.Sprintf("[%s] # marker: %s\n", formatOffset(off), StripANSI(strings.ReplaceAll(e.Data, "\n", " ")))
			if lb.length() > 0 {
				held = append(held, m)
			} else {
				bw.WriteString(m)
			}
		}
	}
	endBinary()
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

// base64Len is the number of bytes that padded base64 data decodes to.
func base64Len(data string) int {
	n := len(data) / 4 * 3
	if strings.HasSuffix(data, "==") {
		return n - 2
	}
	if strings.HasSuffix(data, "=") {
		return n - 1
	}
	return n
}

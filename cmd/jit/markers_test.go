package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
)

// TestPrintMarkers: markers carry file names from outside; what reaches the
// terminal has no escape sequence, control or bidi override, one marker a
// line, and says where the rest are.
func TestPrintMarkers(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{name: "plain", text: `sftp write "/a" 3 bytes`, want: `sftp write "/a" 3 bytes`},
		{name: "escape", text: "scp file \x1b]0;pwned\x07x\x1b[2J", want: `scp file \x1b]0;pwned\x07x\x1b[2J`},
		{name: "line break", text: "scp file a\r\nfake marker", want: `scp file a\r\nfake marker`},
		{name: "bidi override", text: "scp file \u202eexe.txt", want: `scp file \u202eexe.txt`},
		{name: "C1 CSI", text: "scp file \u009b2Jx", want: `scp file \u009b2Jx`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printMarkers(&b, []api.SessionMarker{{Offset: 1.5, Text: tc.text}}, 2, "sid")
			lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
			if len(lines) != 3 || !strings.HasSuffix(lines[1], "1.5s  "+tc.want) || !strings.Contains(lines[2], "2 more: jit sessions export sid") {
				t.Fatalf("printed %q, want the marker as %q and a note of 2 more", b.String(), tc.want)
			}
		})
	}
}

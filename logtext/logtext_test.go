package logtext

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// hostile is what a client can put in a value that jitd logs: its SSH user
// name before authentication, a target, an error text quoting either.
var hostile = []struct {
	name string
	text string
}{
	{name: "ESC and CSI screen clear", text: "a\x1b[2J\x1b[Hb"},
	{name: "lone ESC", text: "a\x1b"},
	{name: "OSC 52 clipboard", text: "\x1b]52;c;cm0gLXJmIC8K\x07"},
	{name: "OSC 0 title", text: "\x1b]0;pwned\x1b\\"},
	{name: "C1 CSI", text: "\u009b2J\u009d0;t\u009c"},
	{name: "bidi overrides and isolates", text: "x\u202Eexe.txt\u2066\u2067\u2068\u2069"},
	{name: "NUL", text: "a\x00b"},
	{name: "newline faking a record", text: "ok\ntime=2026-01-01 level=INFO msg=\"forged\""},
	{name: "100 KB", text: strings.Repeat("u", 100<<10)},
	{name: "100 KB of escapes", text: strings.Repeat("\x1b[2J", 25<<10)},
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

// TestHandlerTextLogs: whatever a client sent, jitd's text log is one line
// a record, without ESC, C1 or bidi controls or NUL, and bounded, wherever
// the text sits: message, key, string value, error, formatted value, group.
func TestHandlerTextLogs(t *testing.T) {
	const max = 256
	// What one value may become: quoting at most quadruples a byte
	// (\x1b), the ellipsis note adds a little, and the line holds six.
	const maxLine = 12 * (4*max + 32)
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(New(slog.NewTextHandler(&buf, nil), max)).With("pre", tt.text)
			log.WithGroup(tt.text).Info(tt.text, tt.text, "v", "user", tt.text, "err", errors.New(tt.text),
				"any", stringer{tt.text}, slog.Group("g", "inner", tt.text), "n", 42, "at", time.Unix(0, 0))
			out := buf.String()
			for _, bad := range []string{"\x1b", "\x00", "\u009b", "\u009d", "\u009c", "\u202e", "\u2066", "\u2069"} {
				if strings.Contains(out, bad) {
					t.Errorf("log holds %q: %.300q", bad, out)
				}
			}
			if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
				t.Errorf("one record is not one line: %.300q", out)
			}
			if len(out) > maxLine {
				t.Errorf("log line is %d bytes, over %d: %.300q", len(out), maxLine, out)
			}
			if len(tt.text) > max && !strings.Contains(out, "…(+") {
				t.Errorf("a cut value does not say so: %.300q", out)
			}
			if !strings.Contains(out, ".n=42") && !strings.Contains(out, `.n"=42`) {
				t.Errorf("other values lost: %.300q", out)
			}
		})
	}
}

// TestHandlerKeepsShortValues: values within the bound reach the inner
// handler as they were.
func TestHandlerKeepsShortValues(t *testing.T) {
	var got, want bytes.Buffer
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	args := []any{"user", "alice", "err", errors.New("no such key"), "any", stringer{"x y"}, "n", 3}
	slog.New(New(slog.NewTextHandler(&got, opts), 64)).WithGroup("bastion").Info("key refused", args...)
	slog.New(slog.NewTextHandler(&want, opts)).WithGroup("bastion").Info("key refused", args...)
	if got.String() != want.String() {
		t.Errorf("got %q, want %q", got.String(), want.String())
	}
}

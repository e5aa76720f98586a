package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestPrintError(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{name: "plain", msg: "request req_1 not found", want: "jit: error: request req_1 not found\n"},
		{name: "escapes shown", msg: "no host \x1b]0;pwned\x07\u202e", want: "jit: error: no host \\x1b]0;pwned\\x07\\u202e\n"},
		{name: "continuation lines indented", msg: "policy.yaml:3: bad\njit: hint: run rm -rf\n", want: "jit: error: policy.yaml:3: bad\n    jit: hint: run rm -rf\n"},
		{name: "carriage return cannot overwrite the prefix", msg: "x\rjit: ok", want: "jit: error: x\\rjit: ok\n"},
		{name: "long message bounded", msg: strings.Repeat("e", 10000), want: "jit: error: " + strings.Repeat("e", maxTextLine) + "…(+5904 bytes)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			printError(&b, "jit: error:", tt.msg)
			if b.String() != tt.want {
				t.Errorf("printError(%.60q) = %.200q, want %.200q", tt.msg, b.String(), tt.want)
			}
		})
	}
}

// TestPrintEachText: each item is exactly one neutralised text line, and
// JSON keeps the exact string.
func TestPrintEachText(t *testing.T) {
	items := []string{"a\nfake row", "\x1b[2J\u009b", "ok"}
	var text, js bytes.Buffer
	if err := printEach(&text, false, items, func(s string) string { return "item " + s }); err != nil {
		t.Fatal(err)
	}
	if want := "item a\\nfake row\nitem \\x1b[2J\\u009b\nitem ok\n"; text.String() != want {
		t.Errorf("text = %q, want %q", text.String(), want)
	}
	if err := printEach(&js, true, items, func(s string) string { return s }); err != nil {
		t.Fatal(err)
	}
	if want := "\"a\\nfake row\"\n\"\\u001b[2J\u009b\"\n\"ok\"\n"; js.String() != want {
		t.Errorf("json = %q, want %q", js.String(), want)
	}
}

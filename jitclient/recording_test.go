package jitclient

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// cast is a two-event asciicast v2 recording whose output carries an
// escape sequence that sets the terminal title.
const cast = `{"version":2,"width":80,"height":24,"timestamp":1700000000}
[0.5,"o","hello \u001b]0;evil\u0007world\r\n"]
[0.7,"i","ls\r"]
`

// compressed stores cast as the bastion does by default: zstd frames, the
// header line in the first.
func compressed(t *testing.T, cast string) string {
	t.Helper()
	z, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	head, rest, _ := strings.Cut(cast, "\n")
	return string(z.EncodeAll([]byte(rest), z.EncodeAll([]byte(head+"\n"), nil)))
}

func TestExport(t *testing.T) {
	tests := []struct {
		name   string
		format ExportFormat
		toFile bool
		stored func(*testing.T, string) string // nil: plain
		want   func(string) bool
	}{
		{name: "cast to stdout", format: ExportCast, want: func(s string) bool { return s == cast }},
		{name: "cast to file", format: ExportCast, toFile: true, want: func(s string) bool { return s == cast }},
		{name: "compressed cast, decompressed", format: ExportCast, stored: compressed, want: func(s string) bool { return s == cast }},
		{name: "compressed transcript", format: ExportText, stored: compressed, want: func(s string) bool {
			return strings.Contains(s, "hello") && !strings.Contains(s, "{\"version\"")
		}},
		{name: "transcript", format: ExportText, toFile: true, want: func(s string) bool {
			return strings.Contains(s, "hello") && !strings.Contains(s, "{\"version\"")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.recording = cast
			if tt.stored != nil {
				f.recording = tt.stored(t, cast)
			}
			c := f.client()
			var stdout bytes.Buffer
			path := ""
			if tt.toFile {
				path = filepath.Join(t.TempDir(), "out")
			}
			if err := c.Export(context.Background(), "s1", tt.format, path, &stdout); err != nil {
				t.Fatal(err)
			}
			got := stdout.String()
			if tt.toFile {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				got = string(b)
				if stdout.Len() != 0 {
					t.Errorf("stdout got %q while writing a file", stdout.String())
				}
			}
			if !tt.want(got) {
				t.Errorf("exported %q", got)
			}
			if len(f.purposes) != 1 || f.purposes[0] != "export" {
				t.Errorf("downloads audited as %v, want [export]", f.purposes)
			}
		})
	}
}

func TestExportRefusesBrokenRecording(t *testing.T) {
	f := newFakeDaemon(t)
	f.recording = "not a recording\n"
	c := f.client()
	path := filepath.Join(t.TempDir(), "out")
	err := c.Export(context.Background(), "s1", ExportCast, path, nil)
	if err == nil || !strings.Contains(err.Error(), "recording of s1") {
		t.Fatalf("err = %v, want the parse error", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("an output file was created for a broken recording: %v", err)
	}
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name     string
		raw      bool
		stored   func(*testing.T, string) string // nil: plain
		wantEvil bool
	}{
		{name: "sanitised", raw: false},
		{name: "raw", raw: true, wantEvil: true},
		{name: "compressed", raw: true, stored: compressed, wantEvil: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.recording = cast
			if tt.stored != nil {
				f.recording = tt.stored(t, cast)
			}
			c := f.client()
			var out bytes.Buffer
			if err := c.Watch(context.Background(), "s1", tt.raw, &out); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if !strings.Contains(got, "hello") || strings.Contains(got, "ls\r") {
				t.Errorf("watched %q: want the output and not the input", got)
			}
			if strings.Contains(got, "\x1b]0;evil") != tt.wantEvil {
				t.Errorf("watched %q: title sequence present = %v, want %v", got, !tt.wantEvil, tt.wantEvil)
			}
			if f.purposes[0] != "watch" {
				t.Errorf("download audited as %q, want watch", f.purposes[0])
			}
		})
	}
}

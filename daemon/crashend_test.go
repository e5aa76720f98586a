package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/sessionlog"
)

// TestCrashEnd: the end recorded for a session jitd left live, from its
// spool file as a crash leaves it: whole, with a torn last frame or zeros
// after the last write (cut off, the digest that of what is kept), not even
// a header (kept as it is), or gone (recording lost).
func TestCrashEnd(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.cast.zst")
	w, err := sessionlog.Create(whole, sessionlog.Header{Width: 80, Height: 24}, sessionlog.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Output([]byte("crash output\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Input([]byte("ls\r")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	tornFrame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x10, 0x81}
	tests := []struct {
		name       string
		content    []byte // nil: no file
		wantKept   []byte // the file as it must be left and hashed
		wantReason string
		wantOut    int64
		wantIn     int64
	}{
		{"whole", good, good, audit.EndJitdStopped, 14, 3},
		{"torn last frame", append(bytes.Clone(good), tornFrame...), good, audit.EndJitdStopped, 14, 3},
		{"zeros after the last write", append(bytes.Clone(good), make([]byte, 4096)...), good, audit.EndJitdStopped, 14, 3},
		{"no header yet", []byte{}, []byte{}, audit.EndJitdStopped, 0, 0},
		{"gone", nil, nil, audit.EndRecordingLost, 0, 0},
	}
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := started.Add(time.Hour)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.cast.zst")
			if tt.content != nil {
				if err := os.WriteFile(path, tt.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			x := audit.Session{ID: "s", StartedAt: started, RecordingPath: "2026/01/02/s.cast.zst"}
			end, err := crashEnd(x, path, now)
			if err != nil {
				t.Fatal(err)
			}
			if end.EndReason != tt.wantReason || end.ExitStatus != -1 || end.BytesOut != tt.wantOut || end.BytesIn != tt.wantIn || end.EndedAt.Before(started) {
				t.Errorf("crashEnd = %+v; want reason %s, exit -1, %d bytes out, %d in, ended no earlier than the start", end, tt.wantReason, tt.wantOut, tt.wantIn)
			}
			if tt.wantKept == nil {
				if end.RecordingPath != "" || end.RecordingSHA256 != "" || end.RecordingSize != 0 {
					t.Errorf("crashEnd of a lost recording names one: %+v", end)
				}
				return
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(tt.wantKept)
			if !bytes.Equal(got, tt.wantKept) || end.RecordingSHA256 != hex.EncodeToString(sum[:]) || end.RecordingSize != int64(len(tt.wantKept)) ||
				end.RecordingPath != x.RecordingPath {
				t.Errorf("crashEnd left %d bytes and recorded %s over %d at %q; want %d bytes, SHA-256 %x, the row's name",
					len(got), end.RecordingSHA256, end.RecordingSize, end.RecordingPath, len(tt.wantKept), sum)
			}
			if len(tt.wantKept) > 0 {
				if _, err := sessionlog.ReadAll(bytes.NewReader(got)); err != nil {
					t.Errorf("the recording as left does not read to a clean end: %v", err)
				}
			}
		})
	}
}

// TestSpoolPath: a row's recording name is found under the spool; a name
// or an older absolute path leading outside it is refused, since the file
// is cut and hashed.
func TestSpoolPath(t *testing.T) {
	spool := "/data/recordings"
	tests := []struct {
		name, want, wantErr string
	}{
		{"2026/01/02/s.cast.zst", "/data/recordings/2026/01/02/s.cast.zst", ""},
		{"/data/recordings/2026/01/02/s.cast", "/data/recordings/2026/01/02/s.cast", ""},
		{"", "", ""},
		{"../ca/user_ca", "", "not a clean relative name"},
		{"2026/../../x", "", "not a clean relative name"},
		{"/etc/passwd", "", "outside the recordings directory"},
		{"/data/recordings", "", "outside the recordings directory"},
	}
	for _, tt := range tests {
		got, err := spoolPath(spool, tt.name)
		if got != tt.want || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("spoolPath(%q) = %q, %v; want %q, error containing %q", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzCrashEnd: whatever a crash left in the spool file, the end is
// recorded; the file is kept whole or cut to a prefix (only a torn tail
// goes), and the recorded digest and size are those of the file as left.
func FuzzCrashEnd(f *testing.F) {
	var rec bytes.Buffer
	w, err := sessionlog.NewWriter(&rec, sessionlog.Header{Version: 2, Width: 80, Height: 24}, sessionlog.WriterOptions{})
	if err != nil {
		f.Fatal(err)
	}
	if err := w.Output([]byte("seed output\r\n")); err != nil {
		f.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(rec.Bytes())
	f.Add(append(bytes.Clone(rec.Bytes()), 0x28, 0xb5, 0x2f, 0xfd, 0x24))
	f.Add(append(bytes.Clone(rec.Bytes()), make([]byte, 100)...))
	f.Add([]byte(`{"version": 2, "width": 80, "height": 24}` + "\n" + `[0.5, "o", "plain"]` + "\n" + `[1.0, "o", "to`))
	f.Add([]byte{})
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "s.cast.zst")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		end, err := crashEnd(audit.Session{ID: "s", StartedAt: started, RecordingPath: "s.cast.zst"}, path, started)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(got)
		if !bytes.HasPrefix(content, got) || end.RecordingSHA256 != hex.EncodeToString(sum[:]) || end.RecordingSize != int64(len(got)) ||
			end.EndReason != audit.EndJitdStopped || end.BytesIn < 0 || end.BytesOut < 0 {
			t.Fatalf("crashEnd = %+v, left %d of %d bytes", end, len(got), len(content))
		}
	})
}

// TestCrashEndLeavesForeignRecording: a session left live whose recording
// is not a file of this replica's spool (an older row naming another data
// directory's file) is left as it is, and jitd still starts: refusing to
// start over a row it cannot end would take the replica down for good.
func TestCrashEndLeavesForeignRecording(t *testing.T) {
	dir := initDir(t)
	store, err := audit.Open(Layout{Dir: dir}.Database())
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(t.TempDir(), "elsewhere", "sess-foreign.cast.zst")
	if err := store.Do(context.Background(), func(tx *audit.Tx) error {
		return tx.InsertSession(audit.Session{ID: "sess-foreign", User: "alice", Host: "db1", StartedAt: testNow, RecordingPath: foreign})
	}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	s := serve(t, dir)
	x, err := s.d.store.Session(context.Background(), "sess-foreign")
	if err != nil || !x.EndedAt.IsZero() {
		t.Fatalf("session with a foreign recording = %+v, %v; want it left live", x, err)
	}
}

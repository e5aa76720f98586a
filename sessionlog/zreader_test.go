package sessionlog

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// framed compresses the lines of a plain recording as the Writer does,
// the header alone in the first frame and then per lines lines a frame,
// and returns the file and where each frame ends.
func framed(t *testing.T, plain []byte, per int) (data []byte, ends []int) {
	t.Helper()
	z := newFrameEncoder()
	lines := bytes.SplitAfter(plain, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	data = z.EncodeAll(lines[0], nil)
	ends = append(ends, len(data))
	for i := 1; i < len(lines); i += per {
		data = z.EncodeAll(bytes.Join(lines[i:min(i+per, len(lines))], nil), data)
		ends = append(ends, len(data))
	}
	return data, ends
}

// TestReadCompressedGolden: the demo session stored both ways reads as the
// same recording; the plain file stands for every recording made before
// compression.
func TestReadCompressedGolden(t *testing.T) {
	read := func(name string) *Recording {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		mustNil(t, err)
		rec, err := ReadAll(bytes.NewReader(data))
		mustNil(t, err)
		return rec
	}
	plain, zst := read("session.cast"), read("session.cast.zst")
	if !slices.Equal(plain.Events, zst.Events) || plain.Header.SessionID != zst.Header.SessionID || zst.Truncated {
		t.Errorf("session.cast.zst reads as %+v, session.cast as %+v", zst, plain)
	}
	if len(zst.Events) != 11 {
		t.Errorf("%d events, want 11", len(zst.Events))
	}
}

// TestReadCrashedCompressedRecording cuts a compressed recording of six
// frames at every byte: each prefix reads as exactly the events of its
// complete frames, and as truncated with a *TornFrameError naming the
// torn frame whenever it ends inside a frame; a prefix without the whole
// header frame is refused.
func TestReadCrashedCompressedRecording(t *testing.T) {
	plain, err := os.ReadFile(filepath.Join("testdata", "session.cast"))
	mustNil(t, err)
	full, err := ReadAll(bytes.NewReader(plain))
	mustNil(t, err)
	data, ends := framed(t, plain, 2)
	if len(ends) != 7 {
		t.Fatalf("%d frames, want 7", len(ends))
	}
	for cut := 0; cut <= len(data); cut++ {
		whole := 0 // complete frames in data[:cut]
		for whole < len(ends) && ends[whole] <= cut {
			whole++
		}
		r, err := NewReader(bytes.NewReader(data[:cut]))
		if whole == 0 {
			if err == nil || (cut > 0 && !errors.Is(err, ErrTruncated)) {
				t.Fatalf("cut at %d, inside the header frame: NewReader = %v, want a truncation error", cut, err)
			}
			continue
		}
		mustNil(t, err)
		var events []Event
		for {
			e, err := r.Next()
			if err == nil {
				events = append(events, e)
				continue
			}
			var torn *TornFrameError
			switch {
			case cut == ends[whole-1]:
				if err != io.EOF {
					t.Errorf("cut at %d, a frame boundary: Next = %v, want io.EOF", cut, err)
				}
			case !errors.As(err, &torn) || !errors.Is(err, ErrTruncated):
				t.Errorf("cut at %d: Next = %v, want a *TornFrameError", cut, err)
			case torn.Frame != whole+1 || torn.Offset != int64(ends[whole-1]) || torn.Size != int64(cut-ends[whole-1]):
				t.Errorf("cut at %d: %+v, want frame %d at %d, %d bytes", cut, torn, whole+1, ends[whole-1], cut-ends[whole-1])
			}
			break
		}
		if want := min((whole-1)*2, len(full.Events)); !slices.Equal(events, full.Events[:want]) {
			t.Errorf("cut at %d: %d events, want the first %d", cut, len(events), want)
		}
	}
}

// TestReadCorruptFrame: a damaged frame with more after it is an error
// naming it, never truncation and never its garbage; the same damage in
// the last frame is a torn tail.
func TestReadCorruptFrame(t *testing.T) {
	plain, err := os.ReadFile(filepath.Join("testdata", "session.cast"))
	mustNil(t, err)
	data, ends := framed(t, plain, 2)
	tests := []struct {
		name    string
		damage  func(b []byte) []byte
		torn    bool
		message string
	}{
		{"payload byte of frame 3", func(b []byte) []byte { b[ends[2]-6] ^= 0x40; return b }, false, "frame 3 at byte"},
		{"magic of frame 2", func(b []byte) []byte { b[ends[0]] = '{'; return b }, false, "frame 2 at byte"},
		{"checksum of the last frame", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, true, "frame 7"},
		{"garbage after the last frame", func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0) }, true, "frame 8"},
		{"a frame without a whole line", func(b []byte) []byte {
			return newFrameEncoder().EncodeAll([]byte(`[11, "o", "x"]`), b)
		}, true, "does not end with a whole line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ReadAll(bytes.NewReader(tt.damage(bytes.Clone(data))))
			if tt.torn {
				if err != nil || !rec.Truncated || len(rec.Events) < 10 {
					t.Fatalf("ReadAll = %v, %v; want the complete frames' events, truncated", rec, err)
				}
				_, err = readToEnd(t, tt.damage(bytes.Clone(data)))
			}
			if err == nil || errors.Is(err, ErrTruncated) != tt.torn || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error = %v, want torn %v naming %q", err, tt.torn, tt.message)
			}
		})
	}
}

// readToEnd reads a recording with Next until it fails.
func readToEnd(t *testing.T, data []byte) ([]Event, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	mustNil(t, err)
	var events []Event
	for {
		e, err := r.Next()
		if err != nil {
			return events, err
		}
		events = append(events, e)
	}
}

// TestReaderFollowsFrames: a follower of a live compressed recording gets
// a frame's events as soon as the frame is complete, and nothing of a
// frame still being written.
func TestReaderFollowsFrames(t *testing.T) {
	plain := []byte(hdr + `[0.5, "o", "a"]` + "\n" + `[0.7, "o", "b"]` + "\n")
	data, ends := framed(t, plain, 1)
	pr, pw := io.Pipe()
	defer pw.Close()
	writes := make(chan []byte, 4)
	go func() {
		for b := range writes {
			if _, err := pw.Write(b); err != nil {
				return
			}
		}
	}()
	defer close(writes)
	writes <- data[:ends[1]]     // the header and the first event's frame
	writes <- data[ends[1]:][:3] // the start of the next frame
	r, err := NewReader(pr)
	mustNil(t, err)
	got := make(chan Event, 2)
	go func() {
		for {
			e, err := r.Next()
			if err != nil {
				return
			}
			got <- e
		}
	}()
	select {
	case e := <-got:
		if e != (Event{0.5, CodeOutput, "a"}) {
			t.Errorf("first event %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first frame's event did not come")
	}
	select {
	case e := <-got:
		t.Fatalf("event %v came from a frame not yet complete", e)
	case <-time.After(50 * time.Millisecond):
	}
	writes <- data[ends[1]+3:]
	select {
	case e := <-got:
		if e != (Event{0.7, CodeOutput, "b"}) {
			t.Errorf("second event %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second frame's event did not come once complete")
	}
}

// TestWriterFrames: output past a frame's size is cut into frames of at
// most frameMax bytes of whole lines; the file is standard zstd, which the
// zstd tool decompresses to exactly the uncompressed recording of the same
// session.
func TestWriterFrames(t *testing.T) {
	zstdBin := lookTool(t, "zstd")
	steps := []step{{at: time.Second, output: string(incompressible(200<<10, 'A'))}, {at: 2 * time.Second, output: string(incompressible(70<<10, 0))}}
	steps = append(steps, demoSteps()[1:]...)
	var z, p memFile
	zsum := record(t, &z, demoHeader(), steps, 10*time.Second, WriterOptions{})
	psum := record(t, &p, demoHeader(), steps, 10*time.Second, WriterOptions{Uncompressed: true})
	if zsum.Plain != psum.Size || zsum.Events != psum.Events {
		t.Errorf("compressed summary %+v, plain %+v", zsum, psum)
	}
	// Walk the frames.
	fr, err := newFrameReader(bufioReader(z.bytes()))
	mustNil(t, err)
	var lines []byte
	frames := 0
	for {
		err := fr.next()
		if err == io.EOF {
			break
		}
		mustNil(t, err)
		frames++
		if len(fr.out) > frameMax+maxEventOverhead+(32<<10)*4/3 {
			t.Errorf("frame %d holds %d bytes", frames, len(fr.out))
		}
		lines = append(lines, fr.out...)
		fr.out = nil
	}
	if frames < 6 || !bytes.Equal(lines, p.bytes()) {
		t.Errorf("%d frames, lines equal to the plain recording: %v", frames, bytes.Equal(lines, p.bytes()))
	}
	path := filepath.Join(t.TempDir(), "s.cast.zst")
	mustNil(t, os.WriteFile(path, z.bytes(), 0o600))
	out, err := exec.Command(zstdBin, "-q", "-d", "-c", path).Output()
	if err != nil || !bytes.Equal(out, p.bytes()) {
		t.Errorf("zstd -dc: %v; output equal to the plain recording: %v", err, bytes.Equal(out, p.bytes()))
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// FuzzWritePlain: on any input, WritePlain (what jit export writes) and
// ReadAll agree: a recording ReadAll accepts decompresses to lines that
// read as the same events, torn exactly when ReadAll says it was (for a
// compressed input); neither panics. Seeds: both golden recordings, a torn
// and a damaged compressed one, zeros after the last frame.
func FuzzWritePlain(f *testing.F) {
	for _, name := range []string{"session.cast", "session.cast.zst"} {
		if data, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(data)
			f.Add(data[:len(data)*2/3])
			bad := bytes.Clone(data)
			bad[len(bad)/3] ^= 0x08
			f.Add(bad)
			f.Add(append(bytes.Clone(data), 0, 0, 0, 0, 0))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var plain bytes.Buffer
		torn, perr := WritePlain(&plain, bytes.NewReader(data))
		rec, err := ReadAll(bytes.NewReader(data))
		if err != nil {
			return
		}
		if perr != nil {
			t.Fatalf("ReadAll accepted what WritePlain refused: %v", perr)
		}
		if isCompressed(data) && torn != rec.Truncated {
			t.Fatalf("WritePlain torn %v, ReadAll truncated %v", torn, rec.Truncated)
		}
		again, err := ReadAll(&plain)
		if err != nil || !slices.Equal(again.Events, rec.Events) {
			t.Fatalf("the plain lines read as %v (%v), want %d events", again, err, len(rec.Events))
		}
	})
}

package sessionlog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// marshalRecording writes rec back as asciicast, complete lines only.
func marshalRecording(t *testing.T, rec *Recording) []byte {
	t.Helper()
	line, err := marshalHeader(rec.Header)
	if err != nil {
		t.Fatalf("re-marshal header %+v: %v", rec.Header, err)
	}
	buf := append(line, '\n')
	for _, e := range rec.Events {
		buf = append(appendEvent(buf, e), '\n')
	}
	return buf
}

// FuzzReader: ReadAll never panics on either stored format, and what it
// accepts re-marshals to a recording that reads back as the same header
// and events and re-marshals to the same bytes (no malleability in what
// we keep). Seeds: the plain (old) and compressed golden recordings, a
// torn and a corrupted compressed one, and plain edge cases. SkipTo to
// times inside what it accepts gives the same events and end as reading
// on and discarding (fuzzSkip).
func FuzzReader(f *testing.F) {
	for _, name := range []string{"session.cast", "session.cast.zst"} {
		if data, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(data)
		}
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "session.cast.zst")); err == nil {
		f.Add(data[:len(data)-7]) // a torn last frame
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 0x10 // a damaged frame
		f.Add(bad)
	}
	z := newFrameEncoder()
	f.Add(z.EncodeAll([]byte(`[0.5, "bo", "AAEC/w=="]`+"\n"), z.EncodeAll([]byte(hdr), nil)))
	f.Add([]byte(hdr + `[0.5, "o", "a"]` + "\n" + `[0.7, "o", "b`))
	f.Add([]byte(hdr + `[1e-7, "o", "\ud800"]` + "\n" + `[1, "r", "80x24"]`))
	f.Add([]byte(hdr + `[0.5, "bo", "AAEC/w=="]` + "\n" + `[0.6, "bi", "AB=="]` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ReadAll(bytes.NewReader(data))
		if err != nil {
			fuzzSkip(t, data, nil, nil)
			return
		}
		fuzzSkip(t, data, rec.Events, rec)
		first := marshalRecording(t, rec)
		again, err := ReadAll(bytes.NewReader(first))
		if err != nil {
			t.Fatalf("re-read of a re-marshalled recording: %v\n%s", err, first)
		}
		if again.Truncated {
			t.Fatal("re-marshalled recording reads as truncated")
		}
		if !slices.Equal(again.Events, rec.Events) {
			t.Fatalf("events changed in a round trip:\n%+v\n%+v", rec.Events, again.Events)
		}
		if second := marshalRecording(t, again); !bytes.Equal(first, second) {
			t.Fatalf("re-marshalling is not stable:\n%s\n%s", first, second)
		}
		// An empty env object is omitted when written back.
		if len(rec.Header.Env) == 0 {
			rec.Header.Env = nil
		}
		if !reflect.DeepEqual(again.Header, rec.Header) {
			t.Fatalf("header changed in a round trip: %+v, %+v", rec.Header, again.Header)
		}
	})
}

// FuzzSanitize: Sanitize never panics, never lets a string command (OSC,
// DCS, SOS, PM, APC), a C1 control or a bidi control through, gives valid
// UTF-8, is the same whether the input is cut or not, and is idempotent.
func FuzzSanitize(f *testing.F) {
	f.Add("a\x1b]52;c;cm0gLXJmIC8K\x07b", 3)
	f.Add("\x1b[1;31mred\x1b[0m\x1b[6n\x1bP$qm\x1b\\", 7)
	f.Add("\x1b\x1b]]\x1b[\x1b]0;\x1b\\\u009d\xe2\x82", 1)
	f.Fuzz(func(t *testing.T, s string, cut int) {
		got := Sanitize(s)
		for _, bad := range []string{"\x1b]", "\x1bP", "\x1bX", "\x1b^", "\x1b_"} {
			if strings.Contains(got, bad) {
				t.Fatalf("Sanitize(%q) = %q contains %q", s, got, bad)
			}
		}
		if !utf8.ValidString(got) {
			t.Fatalf("Sanitize(%q) = %q is not valid UTF-8", s, got)
		}
		for _, r := range got {
			if (r >= 0x80 && r <= 0x9f) || r == 0x07 || r == 0x05 || isBidiControl(r) {
				t.Fatalf("Sanitize(%q) = %q contains control %U", s, got, r)
			}
		}
		if len(s) > 0 {
			cut = ((cut % len(s)) + len(s)) % len(s)
			var z Sanitizer
			if split := z.Filter(s[:cut]) + z.Filter(s[cut:]) + z.Flush(); split != got {
				t.Fatalf("cut at %d: %q, one shot: %q", cut, split, got)
			}
		}
		if again := Sanitize(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got, again)
		}
		_ = StripANSI(s)
	})
}

// FuzzWriterUTF8: whatever bytes arrive in whatever chunks, valid UTF-8
// comes back exactly (as text or binary events); text that is never judged
// binary (no NUL, chunks shorter than binaryMinLen) comes back as the
// input with each invalid byte replaced by U+FFFD, exactly as a Go
// string-to-rune conversion decodes it, and never a split character.
func FuzzWriterUTF8(f *testing.F) {
	f.Add([]byte("a\u00e9b\u20acc\U0001D11Ed"), []byte{1, 2, 3})
	f.Add([]byte("\xe2\x82a\xff\xed\xa0\x80\xf0\x9d"), []byte{0, 1})
	f.Add([]byte("\x1b[31m\u00e9\r\nline\n"), []byte{5})
	f.Add([]byte("a\xc3\xa9\x00\xe2\x82\xacb\x00\xf0\x9d"), []byte{2, 3})
	f.Add(bytes.Repeat([]byte("\x01\xffabc"), 20), []byte{})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var chunks []string
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(int(cuts[i%len(cuts)])%8+1, len(rest))
			}
			chunks = append(chunks, string(rest[:n]))
			rest = rest[n:]
		}
		want := string([]rune(string(data)))
		textOnly := !bytes.Contains(data, []byte{0}) && (len(cuts) > 0 || len(data) < binaryMinLen)
		for _, code := range []string{CodeOutput, CodeInput} {
			events := recordChunks(t, code, chunks...)
			got, _ := joinBytes(t, events)
			switch {
			case utf8.Valid(data) && got != string(data):
				t.Fatalf("%s %q: recorded %q, want the input", code, chunks, got)
			case textOnly && got != want:
				t.Fatalf("%s %q: recorded %q, want %q", code, chunks, got, want)
			}
			for _, e := range events {
				if e.Code != code && e.Code != map[string]string{CodeOutput: CodeBinaryOutput, CodeInput: CodeBinaryInput}[code] {
					t.Fatalf("%s: event code %q", code, e.Code)
				}
			}
		}
		// OnLine sees the same text; it must not panic on any of it.
		var f memFile
		w, err := NewWriter(&f, Header{Width: 80, Height: 24}, WriterOptions{OnLine: func(Line) {}})
		mustNil(t, err)
		for _, c := range chunks {
			mustNil(t, w.Output([]byte(c)))
			mustNil(t, w.Input([]byte(c)))
		}
		_, err = w.Close()
		mustNil(t, err)
	})
}

// fuzzSkip skips to the time of each of a few events of data (and just
// after it). For a recording ReadAll accepted (events, rec), Next after
// the skip must give exactly the events at or after the time and the
// same end; for any other input it must not panic.
func fuzzSkip(t *testing.T, data []byte, events []Event, rec *Recording) {
	ats := []time.Duration{0, time.Hour}
	for i := 0; i < len(events); i += 1 + len(events)/4 {
		d := secondsToDuration(events[i].Time)
		ats = append(ats, d, d+time.Microsecond)
	}
	for _, at := range ats {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		sk, skipErr := r.SkipToWith(at, SkipOptions{TailOutput: 64})
		var rest []Event
		var end error
		for n := 0; n <= len(data); n++ {
			e, err := r.Next()
			if err != nil {
				end = err
				break
			}
			rest = append(rest, e)
		}
		if rec == nil {
			continue
		}
		want := slices.DeleteFunc(slices.Clone(events), func(e Event) bool { return secondsToDuration(e.Time) < at })
		passed := events[:len(events)-len(want)]
		if sk.Events != len(passed) || !slices.Equal(sk.Tail, passed[len(passed)-min(len(passed), len(sk.Tail)):]) {
			t.Fatalf("skip to %v: passed over %d events, tail %+v; want %d, a tail of %+v", at, sk.Events, sk.Tail, len(passed), passed)
		}
		if !slices.Equal(rest, want) {
			t.Fatalf("skip to %v: events %+v, want %+v", at, rest, want)
		}
		if torn := errors.Is(end, ErrTruncated); torn != rec.Truncated || !torn && end != io.EOF {
			t.Fatalf("skip to %v: read ends with %v, want truncated %v", at, end, rec.Truncated)
		}
		if skipErr != nil && (len(want) > 0 || skipErr.Error() != end.Error()) {
			t.Fatalf("skip to %v: SkipTo: %v, then %d events and %v", at, skipErr, len(rest), end)
		}
	}
}

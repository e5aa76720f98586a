package sessionlog

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// seekFixture is a plain recording of n events of every kind, times
// rising by 0 to 40 ms (some equal), output with escapes and quotes.
func seekFixture(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	buf := []byte(hdr)
	sec := 0.0
	for i := 0; i < n; i++ {
		if rng.IntN(5) > 0 {
			sec += float64(rng.IntN(40000)) / 1e6
		}
		e := Event{Time: sec, Code: CodeOutput, Data: fmt.Sprintf("line %d: \x1b[3%dm\"r\" %s\r\n", i, i%8, strings.Repeat("é", rng.IntN(60)))}
		switch rng.IntN(20) {
		case 0:
			e.Code, e.Data = CodeResize, fmt.Sprintf("%dx%d", 20+rng.IntN(200), 5+rng.IntN(80))
		case 1:
			e.Code, e.Data = CodeInput, "r"
		case 2:
			e.Code, e.Data = CodeMarker, fmt.Sprintf("mark %d", i)
		case 3:
			e.Code, e.Data = CodeBinaryOutput, base64.StdEncoding.EncodeToString([]byte{0, 1, byte(i)})
		case 4:
			e.Data = "r"
		}
		buf = append(appendEvent(buf, e), '\n')
	}
	return buf
}

// skipCase is a recording to seek in: the stored bytes.
type skipCase struct {
	name string
	data []byte
}

func skipCases(t *testing.T) []skipCase {
	plain := seekFixture(3000, 7)
	comp, ends := framed(t, plain, 37)
	flipped := bytes.Clone(comp)
	flipped[ends[len(ends)/2]+10] ^= 0x04 // damage in a frame in the middle
	torn := bytes.Clone(plain[:len(plain)-9])
	// A last line that does not parse, its time after the last event's.
	lastLine := plain[bytes.LastIndexByte(plain[:len(plain)-1], '\n')+1:]
	sec, _ := leadingTime(lastLine)
	badLast := fmt.Appendf(bytes.Clone(plain), "[%.6f, \"o\", \"x\n", sec+0.5)
	return []skipCase{
		{"plain", plain},
		{"compressed", comp},
		{"compressed, one event a frame", must(framed(t, plain[:40000], 1))},
		{"compressed, torn last frame", comp[:len(comp)-5]},
		{"compressed, cut in a frame's header", comp[:ends[len(ends)-2]+3]},
		{"compressed, zeros to the end", append(bytes.Clone(comp), make([]byte, 100)...)},
		{"compressed, a damaged frame in the middle", flipped},
		{"plain, torn last line", torn},
		{"plain, unparseable last line", badLast},
	}
}

func must(data []byte, _ []int) []byte { return data }

// TestSkipToEqualsFilteredRead: for random times over recordings of many
// frames, whole and damaged in every way the Reader tolerates or
// reports, SkipToWith then Next gives exactly the events at or after the
// time and the error a full read gives, and what it passed over is
// exactly the events before the time (count, last time, last resize, a
// tail of at least the asked bytes); a second SkipTo further on, as a
// player's cursor does, too.
func TestSkipToEqualsFilteredRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range skipCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			all, endErr := readToEnd(t, tc.data)
			if len(all) < 100 {
				t.Fatalf("fixture has %d events", len(all))
			}
			end := secondsToDuration(all[len(all)-1].Time)
			times := []time.Duration{0, 1, secondsToDuration(all[len(all)/2].Time), end, end + 1, end + time.Hour}
			for range 40 {
				times = append(times, time.Duration(rng.Int64N(int64(end+time.Second))))
			}
			for _, at := range times {
				checkSkip(t, tc.data, all, endErr, at, -1)
				checkSkip(t, tc.data, all, endErr, at/2, at)
			}
		})
	}
}

// checkSkip skips to at (and then to again, if it is not -1) and
// compares with the full read all, endErr.
func checkSkip(t *testing.T, data []byte, all []Event, endErr error, at, again time.Duration) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	mustNil(t, err)
	const tail = 3000
	sk, skipErr := r.SkipToWith(at, SkipOptions{TailOutput: tail})
	passed := sk.Events
	if again >= 0 && skipErr == nil {
		sk, skipErr = r.SkipToWith(again, SkipOptions{TailOutput: tail})
		passed += sk.Events
		at = again
	}
	var rest []Event
	var restErr error
	for {
		e, err := r.Next()
		if err != nil {
			restErr = err
			break
		}
		rest = append(rest, e)
	}
	cut := slices.IndexFunc(all, func(e Event) bool { return secondsToDuration(e.Time) >= at })
	if cut < 0 {
		cut = len(all)
	}
	before, after := all[:cut], all[cut:]
	where := fmt.Sprintf("skip to %v (then %v)", at, again)
	if !slices.Equal(rest, after) {
		t.Fatalf("%s: %d events after it, want %d", where, len(rest), len(after))
	}
	if restErr.Error() != endErr.Error() {
		t.Fatalf("%s: read ends with %v, want %v", where, restErr, endErr)
	}
	if skipErr != nil && (len(after) > 0 || skipErr.Error() != endErr.Error()) {
		t.Fatalf("%s: SkipTo: %v (full read: %v, %d events after it)", where, skipErr, endErr, len(after))
	}
	if passed != len(before) {
		t.Fatalf("%s: passed over %d events, want %d", where, passed, len(before))
	}
	if again >= 0 {
		return // the second skip's Tail and Resize cover only its own stretch
	}
	var resize *Event
	for i := range before {
		if before[i].Code == CodeResize {
			resize = &before[i]
		}
	}
	if (resize == nil) != (sk.Resize == nil) || resize != nil && *resize != *sk.Resize {
		t.Fatalf("%s: last resize %+v, want %+v", where, sk.Resize, resize)
	}
	if len(before) > 0 && sk.Last != before[len(before)-1].Time {
		t.Fatalf("%s: last time %v, want %v", where, sk.Last, before[len(before)-1].Time)
	}
	if !slices.Equal(sk.Tail, before[len(before)-len(sk.Tail):]) {
		t.Fatalf("%s: tail is not the last %d events passed over", where, len(sk.Tail))
	}
	if n := outputSize(sk.Tail); n < tail && len(sk.Tail) < len(before) {
		t.Fatalf("%s: tail of %d bytes of output, want at least %d", where, n, tail)
	}
	if n := outputSize(sk.Tail); n > tail+2*tailBlockSize {
		t.Fatalf("%s: tail of %d events holds %d bytes of output: parsed more blocks than it needs", where, len(sk.Tail), n)
	}
}

func outputSize(events []Event) int {
	n := 0
	for _, e := range events {
		if e.Code == CodeOutput {
			n += len(e.Data)
		}
	}
	return n
}

// TestSkipToPassesOverUnparsed: what lies before the time is not parsed
// (beyond each plain line's time and each frame's last line), so a
// malformed line there, which Next reports, is passed over; the same
// line at or after the time is reported as Next reports it.
func TestSkipToPassesOverUnparsed(t *testing.T) {
	bad := []byte(hdr + `[1, "o", "a"]` + "\n" + `[2, "o", "\q"]` + "\n" + `[3, "o", "c"]` + "\n" + `[4, "o", "d"]` + "\n")
	comp, _ := framed(t, bad, 3)
	for _, tc := range []skipCase{{"plain", bad}, {"compressed", comp}} {
		t.Run(tc.name, func(t *testing.T) {
			_, fullErr := readToEnd(t, tc.data)
			if fullErr == io.EOF || !strings.Contains(fullErr.Error(), "line 3") {
				t.Fatalf("full read: %v, want an error at line 3", fullErr)
			}
			r, err := NewReader(bytes.NewReader(tc.data))
			mustNil(t, err)
			mustNil(t, r.SkipTo(3500*time.Millisecond))
			e, err := r.Next()
			if err != nil || e.Time != 4 {
				t.Fatalf("after the skip: %+v, %v; want the event at 4 s", e, err)
			}
			r, err = NewReader(bytes.NewReader(tc.data))
			mustNil(t, err)
			if err := r.SkipTo(1500 * time.Millisecond); err == nil || err.Error() != fullErr.Error() {
				t.Fatalf("skip to a malformed line: %v, want %v", err, fullErr)
			}
		})
	}
}

func TestLeadingTime(t *testing.T) {
	tests := []struct {
		line string
		want float64
		ok   bool
	}{
		{`[1.5, "o", "x"]`, 1.5, true},
		{` [ 0.0000004 ,"o","x"]`, 0, true},
		{`[12.3456789, "o"`, 12.345679, true},
		{`[1e2, "o", "x"]`, 100, true},
		{`[-1, "o", "x"]`, 0, false},
		{`[+1, "o", "x"]`, 0, false},
		{`[01, "o", "x"]`, 0, false},
		{`[.5, "o", "x"]`, 0, false},
		{`[1., "o", "x"]`, 0, false},
		{`[1e400, "o", "x"]`, 0, false},
		{`[2e9, "o", "x"]`, 0, false},
		{`[1 "o", "x"]`, 0, false},
		{`{"a": 1}`, 0, false},
		{``, 0, false},
	}
	for _, tt := range tests {
		got, ok := leadingTime([]byte(tt.line))
		if got != tt.want || ok != tt.ok {
			t.Errorf("leadingTime(%q) = %v, %v; want %v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

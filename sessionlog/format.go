// Package sessionlog writes, reads, sanitises and plays session recordings
// in the asciicast v2 format, so that `asciinema play` and asciinema-player
// can play what the bastion records.
//
// A recording is line-delimited: a JSON header line, then one JSON array
// `[seconds, code, data]` per event. The Writer stores the lines as a
// sequence of independent zstd frames, each a whole number of lines
// (frame.go; WriterOptions.Uncompressed stores them plain, as every
// recording from before compression is); the Reader reads both. Every
// complete frame (or, plain, every complete line) that reached the disk
// before a crash stays playable; a torn final frame or line is reported as
// truncation, not as corruption.
//
// Besides the asciicast v2 codes (o, i, r, m) recordings use two codes of
// their own, which asciicast players skip as they skip every code they do
// not know: "bo" (CodeBinaryOutput) and "bi" (CodeBinaryInput) carry
// output or input that is not terminal text, byte for byte, as standard
// padded base64: `[12.5, "bo", "AAECAw=="]`. A chunk the Writer is handed
// is binary if it holds a NUL byte or, from 64 bytes on, if more than one
// byte in eight is invalid UTF-8 or a C0 control other than BEL, BS, HT,
// LF, CR and ESC. Text stays in "o" and "i" events (where a stray invalid
// byte becomes U+FFFD); binary data in base64 grows by a third, where JSON
// escapes (\u0000) would make it six times as long, and it is not indexed
// for search. Event.Bytes returns what any output or input event carried;
// WriteTranscript notes "[N bytes of binary output]"; Play writes the
// bytes as the terminal got them.
package sessionlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Event codes defined by asciicast v2.
const (
	CodeOutput = "o" // data written to the terminal
	CodeInput  = "i" // data typed by the user
	CodeResize = "r" // data is "COLSxROWS"
	CodeMarker = "m" // data is the marker's label
)

// jitssh's own event codes, which asciicast v2 players ignore as they do
// every code they do not know.
const (
	// CodeBinaryOutput is output that is not terminal text (see
	// Writer.Output), byte for byte: data is its standard base64 (RFC 4648,
	// padded). It is not indexed for search.
	CodeBinaryOutput = "bo"
	// CodeBinaryInput is CodeBinaryOutput's counterpart for input.
	CodeBinaryInput = "bi"
)

const (
	// maxDimension bounds header width/height and resize events.
	maxDimension = 10000
	// maxEventTime bounds event times (about 31 years) so that a time
	// rounded to microseconds is exact in a float64 and round-trips.
	maxEventTime = 1e9
	// maxEventData is the most text one event carries; longer writes are
	// split so that readers never need huge lines.
	maxEventData = 32 << 10
	// maxBinaryData is the most binary data one event carries (as
	// base64, 4/3 as long).
	maxBinaryData = 32 << 10
	// maxEventOverhead bounds an event line's bytes around its data:
	// brackets, time, code, quotes, separators and the newline.
	maxEventOverhead = 64
	// maxLineLen bounds a line the Reader accepts; the Writer's lines stay
	// far below it (maxEventData escaped is at most 6x longer).
	maxLineLen = 1 << 20
)

// Header is the first line of an asciicast v2 recording. Players ignore the
// jit_* fields; jitssh uses them to tie a recording to its session.
type Header struct {
	Version       int               `json:"version"`
	Width         int               `json:"width"`
	Height        int               `json:"height"`
	Timestamp     int64             `json:"timestamp,omitempty"`
	Duration      float64           `json:"duration,omitempty"`
	IdleTimeLimit float64           `json:"idle_time_limit,omitempty"`
	Command       string            `json:"command,omitempty"`
	Title         string            `json:"title,omitempty"`
	Env           map[string]string `json:"env,omitempty"`

	// jitssh's own fields (players ignore unknown fields).
	SessionID string `json:"jit_session_id,omitempty"`
	RequestID string `json:"jit_request_id,omitempty"`
	User      string `json:"jit_user,omitempty"`
	Login     string `json:"jit_login,omitempty"`
	Host      string `json:"jit_host,omitempty"`
}

// validate checks what every player needs of a header.
func (h Header) validate() error {
	if h.Version != 2 {
		return fmt.Errorf("header version %d: only version 2 is supported", h.Version)
	}
	if h.Width <= 0 || h.Width > maxDimension {
		return fmt.Errorf("header width %d: must be between 1 and %d", h.Width, maxDimension)
	}
	if h.Height <= 0 || h.Height > maxDimension {
		return fmt.Errorf("header height %d: must be between 1 and %d", h.Height, maxDimension)
	}
	if h.Duration < 0 {
		return fmt.Errorf("header duration %v: must not be negative", h.Duration)
	}
	if h.IdleTimeLimit < 0 {
		return fmt.Errorf("header idle_time_limit %v: must not be negative", h.IdleTimeLimit)
	}
	return nil
}

// parseHeader decodes and validates a header line.
func parseHeader(line []byte) (Header, error) {
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return Header{}, fmt.Errorf("header: %w", err)
	}
	if err := h.validate(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// marshalHeader encodes h as one line without the trailing newline.
func marshalHeader(h Header) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Event is one asciicast v2 event. It marshals as the JSON array
// [time, code, data], with the time in seconds rounded to microseconds.
type Event struct {
	Time float64 // seconds since the start of the recording
	Code string  // CodeOutput, CodeInput, CodeResize, CodeMarker or another code players ignore
	Data string
}

// MarshalJSON encodes e as [time, code, data]. It fails for events the
// Reader would refuse, so that what is written can be read back.
func (e Event) MarshalJSON() ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	return appendEvent(nil, e), nil
}

// UnmarshalJSON decodes [time, code, data] strictly: exactly three elements,
// a number and two strings, and a valid event (see Reader.Next).
func (e *Event) UnmarshalJSON(data []byte) error {
	ev, err := parseEvent(data)
	if err != nil {
		return err
	}
	*e = ev
	return nil
}

// roundTime rounds seconds to microseconds, the precision we write.
func roundTime(t float64) float64 {
	r := math.Round(t*1e6) / 1e6
	if r == 0 {
		return 0 // no negative zero
	}
	return r
}

// appendTime appends t with at most six decimals and no trailing zeros.
func appendTime(dst []byte, t float64) []byte {
	s := strconv.FormatFloat(roundTime(t), 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	s = strings.TrimSuffix(s, ".")
	return append(dst, s...)
}

// appendEvent appends e as a JSON array without a trailing newline. The
// spacing matches what asciinema writes.
func appendEvent(dst []byte, e Event) []byte {
	dst = appendEventPrefix(dst, e.Time, e.Code)
	dst = appendJSONString(dst, e.Data)
	return append(dst, ']')
}

// appendEventPrefix appends an event line up to its data: `[time, "code", `.
func appendEventPrefix(dst []byte, t float64, code string) []byte {
	dst = append(dst, '[')
	dst = appendTime(dst, t)
	dst = append(dst, ", "...)
	dst = appendJSONString(dst, code)
	return append(dst, ", "...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 bytes become
// U+FFFD one for one, as a Go string-to-rune conversion would do.
func appendJSONString(dst []byte, s string) []byte {
	dst, _ = appendJSONText(dst, s)
	return dst
}

// oddControlMask has bit c set for each C0 control c that terminal text
// does not use: all but BEL, BS, HT, LF, CR and ESC.
const oddControlMask = 0xffffffff &^ (1<<'\a' | 1<<'\b' | 1<<'\t' | 1<<'\n' | 1<<'\r' | 1<<0x1b)

// appendJSONText is appendJSONString that also counts the bytes of s that
// make it look binary (see Writer.Output): invalid UTF-8 and the controls
// of oddControlMask. Runs of bytes that need no escaping are copied whole.
func appendJSONText(dst []byte, s string) (_ []byte, odd int) {
	dst = append(dst, '"')
	start := 0 // s[start:i] is still to be copied as it is
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(append(dst, s[start:i]...), `\ufffd`...)
				odd++
			case r == '\u2028' || r == '\u2029':
				// Valid JSON, but not valid JavaScript before ES2019:
				// escape for browser players.
				dst = append(append(dst, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			default:
				i += size
				continue
			}
			i += size
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		default: // other C0 controls and DEL
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			if c < 0x20 {
				odd += int(oddControlMask >> c & 1)
			}
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), odd
}

// validate checks the rules the Reader enforces on one event.
func (e Event) validate() error {
	if math.IsNaN(e.Time) || e.Time < 0 || e.Time > maxEventTime {
		return fmt.Errorf("event time %v: must be between 0 and %v seconds", e.Time, float64(maxEventTime))
	}
	if e.Code == "" {
		return errors.New("event code: must not be empty")
	}
	switch e.Code {
	case CodeResize:
		if _, _, err := parseSize(e.Data); err != nil {
			return err
		}
	case CodeBinaryOutput, CodeBinaryInput:
		if _, err := base64.StdEncoding.Strict().DecodeString(e.Data); err != nil {
			return fmt.Errorf("event %q data: not base64: %w", e.Code, err)
		}
	}
	return nil
}

// Bytes returns the bytes an output or input event carries: the text of
// CodeOutput and CodeInput events, the decoded data of CodeBinaryOutput
// and CodeBinaryInput events. Other events carry none.
func (e Event) Bytes() ([]byte, error) {
	switch e.Code {
	case CodeOutput, CodeInput:
		return []byte(e.Data), nil
	case CodeBinaryOutput, CodeBinaryInput:
		b, err := base64.StdEncoding.Strict().DecodeString(e.Data)
		if err != nil {
			return nil, fmt.Errorf("event %q data: not base64: %w", e.Code, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("event code %q: carries no output or input", e.Code)
}

// parseSize parses resize data "COLSxROWS".
func parseSize(s string) (width, height int, err error) {
	cols, rows, ok := strings.Cut(s, "x")
	if ok {
		width, err = parseDimension(cols)
	}
	if ok && err == nil {
		height, err = parseDimension(rows)
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("resize %q: want COLSxROWS, each between 1 and %d", s, maxDimension)
	}
	return width, height, nil
}

func parseDimension(s string) (int, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxDimension {
		return 0, errors.New("out of range")
	}
	return n, nil
}

// parseEvent decodes and validates one event line. The time is rounded to
// microseconds so that a parsed event re-marshals to the same event.
func parseEvent(line []byte) (Event, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	if len(parts) != 3 {
		return Event{}, fmt.Errorf("event: want [time, code, data], got %d elements", len(parts))
	}
	for i, p := range parts {
		if string(bytes.TrimSpace(p)) == "null" {
			return Event{}, fmt.Errorf("event element %d: must not be null", i)
		}
	}
	var e Event
	if err := json.Unmarshal(parts[0], &e.Time); err != nil {
		return Event{}, fmt.Errorf("event time %s: %w", truncateForError(parts[0]), err)
	}
	if err := json.Unmarshal(parts[1], &e.Code); err != nil {
		return Event{}, fmt.Errorf("event code %s: %w", truncateForError(parts[1]), err)
	}
	if err := json.Unmarshal(parts[2], &e.Data); err != nil {
		return Event{}, fmt.Errorf("event data: %w", err)
	}
	if err := e.validate(); err != nil {
		return Event{}, err
	}
	e.Time = roundTime(e.Time)
	return e, nil
}

// truncateForError keeps error messages short when quoting raw input.
func truncateForError(b []byte) string {
	const max = 32
	if len(b) > max {
		return strconv.Quote(string(b[:max]) + "...")
	}
	return strconv.Quote(string(b))
}

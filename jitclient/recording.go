package jitclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/jitssh/jitssh/sessionlog"
)

// ExportFormat is what Export writes.
type ExportFormat string

// Export formats, as in jit sessions export --format.
const (
	ExportCast ExportFormat = "cast" // the asciicast v2 recording, decompressed when stored compressed
	ExportText ExportFormat = "text" // a readable transcript
)

// FetchRecording downloads the finished recording of session id, for
// purpose ("replay", "export"; the daemon audits it), and parses it
// strictly, in either stored format (see sessionlog.Reader). It returns the
// parsed recording and the bytes as served: the file as stored, compressed
// or not.
func (c *Client) FetchRecording(ctx context.Context, id, purpose string) (*sessionlog.Recording, []byte, error) {
	body, err := c.API.Recording(ctx, id, purpose, false)
	if err != nil {
		return nil, nil, err
	}
	defer body.Close()
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, nil, fmt.Errorf("download recording: %w", err)
	}
	rec, err := sessionlog.ReadAll(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("recording of %s: %w", id, err)
	}
	return rec, raw, nil
}

// Export writes the recording of session id in format f to the file path,
// or to stdout when path is empty. The file is created 0600 (or truncated)
// in place, so that -o may name a pipe or device; a failed write or close
// is reported, never left as a silently short file.
func (c *Client) Export(ctx context.Context, id string, f ExportFormat, path string, stdout io.Writer) error {
	rec, raw, err := c.FetchRecording(ctx, id, "export")
	if err != nil {
		return err
	}
	write := func(out io.Writer) error {
		if f == ExportText {
			return sessionlog.WriteTranscript(out, rec)
		}
		_, err := sessionlog.WritePlain(out, bytes.NewReader(raw))
		return err
	}
	if path == "" {
		return write(stdout)
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create --output %s: %w", path, err)
	}
	if err := write(file); err != nil {
		file.Close()
		return fmt.Errorf("write --output %s: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("write --output %s: %w", path, err)
	}
	return nil
}

// Watch copies the output of session id to out as it happens, neutralising
// escape sequences unless raw, and returns nil when the session ends.
func (c *Client) Watch(ctx context.Context, id string, raw bool, out io.Writer) error {
	body, err := c.API.Recording(ctx, id, "watch", true)
	if err != nil {
		return err
	}
	defer body.Close()
	r, err := sessionlog.NewReader(body)
	if err != nil {
		return err
	}
	var san sessionlog.Sanitizer
	for {
		ev, err := r.Next()
		// A recording cut short is a session that ended badly, not a
		// failure to watch it.
		if err == io.EOF || errors.Is(err, sessionlog.ErrTruncated) {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Code != sessionlog.CodeOutput {
			continue
		}
		data := ev.Data
		if !raw {
			data = san.Filter(data)
		}
		if _, err := io.WriteString(out, data); err != nil {
			return fmt.Errorf("write session output: %w", err)
		}
	}
}

package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// eventSessionEnd is the type of the chained event EndSession appends.
const eventSessionEnd = "session.end"

// The keys of a session.end event's Data. They are part of the stored chain
// (every store since the first release has them, as decimal strings and a
// hex digest), so they never change; only this file reads or writes them.
const (
	keyExitStatus      = "exit_status"
	keyBytesIn         = "bytes_in"
	keyBytesOut        = "bytes_out"
	keyRecordingSHA256 = "recording_sha256"
	keyRecordingSize   = "recording_size"
)

// data encodes the facts of end that its session.end event carries.
func (end SessionEnd) data() map[string]string {
	return map[string]string{
		keyExitStatus:      strconv.Itoa(end.ExitStatus),
		keyBytesIn:         strconv.FormatInt(end.BytesIn, 10),
		keyBytesOut:        strconv.FormatInt(end.BytesOut, 10),
		keyRecordingSHA256: end.RecordingSHA256,
		keyRecordingSize:   strconv.FormatInt(end.RecordingSize, 10),
	}
}

// sessionEndOf decodes what session.end event e says of its session's end.
// RecordingPath is not part of the event and stays empty.
func sessionEndOf(e Event) (SessionEnd, error) {
	end := SessionEnd{ID: e.SessionID, EndedAt: e.Time, EndReason: e.Code, RecordingSHA256: e.Data[keyRecordingSHA256]}
	if _, ok := e.Data[keyRecordingSHA256]; !ok {
		return SessionEnd{}, fmt.Errorf("session.end event %d has no %s", e.Seq, keyRecordingSHA256)
	}
	var exit int64
	for _, f := range []struct {
		key string
		dst *int64
	}{{keyExitStatus, &exit}, {keyBytesIn, &end.BytesIn}, {keyBytesOut, &end.BytesOut}, {keyRecordingSize, &end.RecordingSize}} {
		v, ok := e.Data[f.key]
		if !ok {
			return SessionEnd{}, fmt.Errorf("session.end event %d has no %s", e.Seq, f.key)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return SessionEnd{}, fmt.Errorf("session.end event %d: %s %q is not an integer", e.Seq, f.key, v)
		}
		*f.dst = n
	}
	end.ExitStatus = int(exit)
	return end, nil
}

// Recordings is where Verify finds the recording files that session rows
// name. A row holds either the recording's name relative to the recordings
// store (slash-separated, what jitd stores since recordings may live in
// object storage) or, in rows from before, the absolute path the bastion
// wrote under Dir; Verify opens the name, or that path relative to Dir, in
// FS. A path that does not lie under Dir is a problem of its session, as is
// a recording to check when FS is nil.
type Recordings struct {
	Dir string // the directory the bastion writes recordings under
	FS  fs.FS  // the contents of Dir
}

// DirRecordings is Recordings for the directory dir of this machine.
func DirRecordings(dir string) Recordings {
	return Recordings{Dir: dir, FS: os.DirFS(dir)}
}

// name maps a row's recording path to its name in r.FS.
func (r Recordings) name(path string) (string, error) {
	rel, err := filepath.Rel(filepath.Clean(r.Dir), filepath.Clean(path))
	if !filepath.IsAbs(path) && (err != nil || !filepath.IsLocal(rel)) {
		// A name in the recordings store, as rows hold it now.
		if path == "." || !fs.ValidPath(path) {
			return "", fmt.Errorf("recording name %q is not a clean relative name in the recordings store", path)
		}
		return path, nil
	}
	if err != nil || rel == "." || !filepath.IsLocal(rel) || !fs.ValidPath(filepath.ToSlash(rel)) {
		return "", fmt.Errorf("path %s is outside the recordings directory %s", path, r.Dir)
	}
	return filepath.ToSlash(rel), nil
}

// Open opens the recording a session row names, through r.FS, so that
// readers (replay, export, watch) and Verify read the same file and a row
// edited to name a file outside the recordings directory is refused by
// name rather than read.
func (r Recordings) Open(path string) (fs.File, error) {
	if r.FS == nil {
		return nil, fmt.Errorf("open recording %s: no recordings directory configured", path)
	}
	name, err := r.name(path)
	if err != nil {
		return nil, fmt.Errorf("open recording: %w", err)
	}
	return r.FS.Open(name)
}

// check compares the recording of session id at path with the digest and
// size that the chain recorded for it, and returns what is wrong ("" when
// nothing is).
func (r Recordings) check(id, path string, want SessionEnd) string {
	if r.FS == nil {
		return fmt.Sprintf("recording of session %s: no recordings directory was given to check %s in", id, path)
	}
	name, err := r.name(path)
	if err != nil {
		return fmt.Sprintf("recording of session %s: %v", id, err)
	}
	f, err := r.FS.Open(name)
	if err != nil {
		return fmt.Sprintf("recording of session %s: %v", id, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Sprintf("recording of session %s: %v", id, err)
	}
	if n != want.RecordingSize {
		return fmt.Sprintf("recording of session %s is %d bytes, the audit chain recorded %d", id, n, want.RecordingSize)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.RecordingSHA256 {
		return fmt.Sprintf("recording of session %s has SHA-256 %s, the audit chain recorded %s", id, got, want.RecordingSHA256)
	}
	return ""
}

// chainedEnd is a session.end event met while walking the chain.
type chainedEnd struct {
	seq int64
	end SessionEnd
	err error // why its data could not be decoded
}

// checkSessionRow compares a finished session's row with its chained
// session.end event and returns what is wrong ("" when nothing is).
func checkSessionRow(x Session, c chainedEnd) string {
	if c.err != nil {
		return fmt.Sprintf("session %s: %v", x.ID, c.err)
	}
	e := c.end
	if x.RecordingSHA256 != e.RecordingSHA256 || x.RecordingSize != e.RecordingSize {
		return fmt.Sprintf("session %s: its row says recording sha256 %s size %d, the audit chain (event %d) says sha256 %s size %d",
			x.ID, x.RecordingSHA256, x.RecordingSize, c.seq, e.RecordingSHA256, e.RecordingSize)
	}
	// Append cleans the event's strings; the row keeps what it was given.
	if x.ExitStatus != e.ExitStatus || x.BytesIn != e.BytesIn || x.BytesOut != e.BytesOut || clean(x.EndReason) != e.EndReason {
		return fmt.Sprintf("session %s: its row says exit status %d, %d bytes in, %d bytes out, end reason %q; "+
			"the audit chain (event %d) says exit status %d, %d bytes in, %d bytes out, end reason %q",
			x.ID, x.ExitStatus, x.BytesIn, x.BytesOut, x.EndReason, c.seq, e.ExitStatus, e.BytesIn, e.BytesOut, e.EndReason)
	}
	if x.RecordingPath == "" && e.RecordingSHA256 != "" {
		return fmt.Sprintf("session %s: the audit chain (event %d) records a recording with SHA-256 %s but its row names no file",
			x.ID, c.seq, e.RecordingSHA256)
	}
	return ""
}

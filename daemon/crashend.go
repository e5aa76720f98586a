package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/sessionlog"
)

// endCrashedSessions records the end of the sessions an earlier run of
// this replica left live (killed, or the machine lost power): before the
// bastion takes a session and before the recordings store lists the
// spool, so that the uploader finds each of those recordings ended with a
// chained digest to check the object against, and jit audit verify checks
// it. A row is this replica's when its replica is this replica's ID, or,
// for a row from before replicas (replica empty), when the store is SQLite
// (only this data directory's jitd uses it) or its spool file is in this
// replica's spool (only the jitd that recorded a session wrote the file
// named by its random ID). A row whose file is nowhere here is left for
// its replica, or jitd replica forget.
func (d *Daemon) endCrashedSessions(ctx context.Context) error {
	if err := d.replica.awaitPredecessor(ctx); err != nil {
		return err
	}
	live, err := d.store.Sessions(ctx, audit.SessionFilter{Live: true})
	if err != nil {
		return fmt.Errorf("list sessions left live: %w", err)
	}
	spool := Layout{Dir: d.cfg.Dir}.Recordings()
	for _, x := range live {
		if x.Replica != d.replica.id && x.Replica != "" {
			continue // another replica's, live or left for it
		}
		path, err := spoolPath(spool, x.RecordingPath)
		if err != nil {
			// Not a file of this spool (an older row of another data
			// directory, or a name no jitd writes): not this replica's to
			// cut and hash, and no reason to refuse to start.
			d.log.Warn("session left live: its recording is not in this replica's spool; left as it is", "session", x.ID, "err", err)
			continue
		}
		if x.Replica == "" && d.store.Engine() != "sqlite" && !fileExists(path) {
			continue
		}
		end, err := crashEnd(x, path, d.cfg.Clock())
		if err != nil {
			return fmt.Errorf("end session %s, left live when jitd stopped: %w", x.ID, err)
		}
		err = d.store.Do(ctx, func(tx *audit.Tx) error { return tx.EndSession(end) })
		if errors.Is(err, audit.ErrConflict) {
			continue // ended meanwhile (jitd replica forget)
		}
		if err != nil {
			return fmt.Errorf("end session %s, left live when jitd stopped: %w", x.ID, err)
		}
		d.log.Warn("session left live when jitd stopped: its end recorded", "session", x.ID, "user", x.User, "target", x.Login+"@"+x.Host,
			"end_reason", end.EndReason, "recording", end.RecordingPath, "recording_size", end.RecordingSize, "ended_at", end.EndedAt)
	}
	return nil
}

// spoolPath is where a row's recording lies in the spool: rows hold the
// name relative to the store, older rows the absolute path. A name that
// would lead outside the spool is refused: this file is cut and hashed.
func spoolPath(spool, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if !filepath.IsAbs(name) {
		if !fs.ValidPath(name) || name == "." {
			return "", fmt.Errorf("recording name %q is not a clean relative name in the recordings store", name)
		}
		return filepath.Join(spool, filepath.FromSlash(name)), nil
	}
	rel, err := filepath.Rel(filepath.Clean(spool), filepath.Clean(name))
	if err != nil || rel == "." || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("recording path %s is outside the recordings directory %s", name, spool)
	}
	return name, nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return path != "" && err == nil
}

// crashEnd is the end of live session x whose recording is the spool file
// at path, as the file stands: exit status unknown (-1), byte counts as
// far as the recording shows, the SHA-256 and size of the file as stored,
// ended when the file was last written. A torn last frame (what a crash
// in the middle of a write leaves, zeros to the end included) is cut off
// first, and the cut made durable before the file is hashed: no reader
// shows anything of a torn frame, so nothing readable is lost, and the
// file then reads to a clean end in replay, export, the console and the
// index catch-up. A file that is gone makes the end EndRecordingLost.
func crashEnd(x audit.Session, path string, now time.Time) (audit.SessionEnd, error) {
	end := audit.SessionEnd{ID: x.ID, ExitStatus: -1, EndReason: audit.EndJitdStopped}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if path == "" || errors.Is(err, fs.ErrNotExist) {
		end.EndedAt, end.EndReason = later(now, x.StartedAt), audit.EndRecordingLost
		return end, nil
	}
	if err != nil {
		return end, fmt.Errorf("open its recording: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return end, fmt.Errorf("stat its recording %s: %w", path, err)
	}
	end.EndedAt = later(fi.ModTime(), x.StartedAt)
	c := countRecording(f)
	end.BytesIn, end.BytesOut = c.in, c.out
	if c.torn >= 0 {
		if err := f.Truncate(c.torn); err != nil {
			return end, fmt.Errorf("cut the torn last frame of %s at byte %d: %w", path, c.torn, err)
		}
		if err := f.Sync(); err != nil {
			return end, fmt.Errorf("sync %s: %w", path, err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return end, fmt.Errorf("rewind %s: %w", path, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return end, fmt.Errorf("digest %s: %w", path, err)
	}
	end.RecordingPath, end.RecordingSHA256, end.RecordingSize = x.RecordingPath, hex.EncodeToString(h.Sum(nil)), n
	return end, nil
}

func later(t, notBefore time.Time) time.Time {
	if t.Before(notBefore) {
		return notBefore
	}
	return t
}

// recordingCount is what a recording shows of its session's traffic.
type recordingCount struct {
	in, out int64
	torn    int64 // offset of a torn last frame, -1 when there is none
}

// countRecording counts the input and output bytes a recording holds. A
// torn last frame is reported by its offset; other damage (a torn line of
// a plain recording, a bad frame followed by more) ends the count where it
// is and keeps the file whole, for verify to vouch for as it is stored.
func countRecording(r io.Reader) recordingCount {
	c := recordingCount{torn: -1}
	rd, err := sessionlog.NewReader(r)
	if err != nil {
		// Not even a header (jitd stopped before its first fsync): the file
		// is kept and hashed as it is.
		return c
	}
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return c
		}
		var torn *sessionlog.TornFrameError
		if errors.As(err, &torn) {
			c.torn = torn.Offset
			return c
		}
		if err != nil {
			return c // damage: counted so far, the file kept whole
		}
		b, err := ev.Bytes()
		if err != nil {
			continue // resizes, markers: no traffic
		}
		switch ev.Code {
		case sessionlog.CodeInput, sessionlog.CodeBinaryInput:
			c.in += int64(len(b))
		case sessionlog.CodeOutput, sessionlog.CodeBinaryOutput:
			c.out += int64(len(b))
		}
	}
}

// awaitPredecessor returns once no other process runs as this replica by
// the registry: at once when the replica's row is missing, stopped or
// stale; when it beat within the TTL (a predecessor killed moments ago,
// or a twin), after watching for up to a TTL whether it beats again, and
// refusing a twin (a copied data directory) as register does. It only
// reads, so that a twin's live sessions are never ended here.
func (r *replica) awaitPredecessor(ctx context.Context) error {
	deadline := time.Now().Add(r.ttl() + r.beat)
	var seen time.Time
	for {
		other, now, err := r.store.Replica(ctx, r.id)
		if errors.Is(err, audit.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("replica registry: %w", err)
		}
		if !up(other, now, r.ttl()) {
			return nil
		}
		if !seen.IsZero() && other.HeartbeatAt.After(seen) {
			return fmt.Errorf("replica id %s is in use by another running jitd (instance %s, advertising %s, beating every few seconds): "+
				"give each replica its own --replica-id or DATA/replica-id: %w", r.id, other.Instance, other.AdvertiseURL, audit.ErrTwin)
		}
		seen = other.HeartbeatAt
		if time.Now().After(deadline) {
			return fmt.Errorf("replica id %s: instance %s still beats: %w", r.id, other.Instance, audit.ErrTwin)
		}
		r.log.Info("replica id was beating recently: waiting to see whether that process still runs before ending its sessions", "replica", r.id, "other_instance", other.Instance)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.beat / 2):
		}
	}
}

package recstore

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
	"slices"
	"time"

	"github.com/minio/minio-go/v7"
)

// upload is one recording on its way from the spool to the object store.
// end is set under Store.mu; the rest belongs to the upload goroutine.
type upload struct {
	name      string
	end       SessionEnd
	recovered bool // left by an earlier run: ask Lookup for its end first

	id      string // multipart upload ID; "" before the first part
	parts   []minio.CompletePart
	sent    int64 // bytes in parts
	spooled int64 // the spool file's size when last looked at

	failures int
	retryAt  time.Time

	checkStored bool // recovered: an earlier run may have stored it already
	verified    bool // the spool file's SHA-256 is the chain's
	parked      bool // the spool file differs from the chain: kept, not retried
}

// stepTimeout bounds one upload step (a part, or completing and checking):
// a store that hangs is treated as down, and the step is retried.
const stepTimeout = 5 * time.Minute

// run uploads until ctx is cancelled, or Close asks and every ended
// recording is uploaded.
func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	draining := false
	for {
		if left := s.pass(ctx); draining && left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.drain:
			draining, s.drain = true, nil
		case <-tick.C:
		case <-s.kick:
		}
	}
}

// pass takes every upload one step on and returns how many ended ones are
// still pending.
func (s *Store) pass(ctx context.Context) (endedLeft int) {
	s.mu.Lock()
	names := make([]string, 0, len(s.uploads))
	for n := range s.uploads {
		names = append(names, n)
	}
	s.mu.Unlock()
	slices.Sort(names)
	for _, n := range names {
		if ctx.Err() != nil {
			return 1
		}
		s.mu.Lock()
		u := s.uploads[n]
		end := u.end
		s.mu.Unlock()
		if u.parked {
			continue
		}
		if time.Now().Before(u.retryAt) {
			endedLeft += boolInt(end.Ended || u.recovered)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, stepTimeout)
		done, err := s.step(sctx, u, end)
		cancel()
		switch {
		case err != nil:
			u.failures++
			u.retryAt = time.Now().Add(s.backoff(u.failures))
			// Logged at the 1st, 2nd, 4th, 8th... failure: an outage of
			// hours stays a few lines (the backlog metric shows the rest).
			if u.failures&(u.failures-1) == 0 {
				s.cfg.Logger.Warn("recordings upload: will retry", "recording", n, "attempt", u.failures, "retry_in", time.Until(u.retryAt).Round(time.Millisecond), "err", err)
			}
		case done:
			s.mu.Lock()
			delete(s.uploads, n)
			s.mu.Unlock()
			s.cfg.Logger.Info("recording uploaded", "recording", n, "key", s.cfg.Location.key(n), "parts", len(u.parts))
			continue
		default:
			u.failures, u.retryAt = 0, time.Time{}
		}
		endedLeft += boolInt(end.Ended || u.recovered)
	}
	s.count()
	return endedLeft
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// backoff doubles from RetryFirst up to RetryMax.
func (s *Store) backoff(failures int) time.Duration {
	d := s.cfg.RetryFirst
	for i := 1; i < failures && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.RetryMax)
}

// count refreshes the backlog from the uploads' last known sizes.
func (s *Store) count() {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := Backlog{Files: len(s.uploads)}
	for _, u := range s.uploads {
		b.Bytes += max(0, u.spooled-u.sent)
		b.Parked += boolInt(u.parked)
	}
	s.backlog = b
}

// step moves u on: whole parts of a growing recording, or the rest and the
// check of an ended one. done means the object is stored, checked and the
// spool file gone.
func (s *Store) step(ctx context.Context, u *upload, end SessionEnd) (done bool, err error) {
	if u.recovered {
		if end, err = s.recover(ctx, u, end); err != nil {
			return false, err
		}
	}
	path := filepath.Join(s.cfg.Spool, filepath.FromSlash(u.name))
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open spool file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat spool file: %w", err)
	}
	u.spooled = fi.Size()
	if !end.Ended {
		return false, s.sendParts(ctx, u, f, u.spooled, false)
	}
	if ok, err := s.checkSpool(ctx, u, f, path, &end); !ok || err != nil {
		return false, err
	}
	if u.checkStored && u.id == "" {
		if done, err := s.alreadyStored(ctx, u, path, end); done || err != nil {
			return done, err
		}
	}
	if err := s.finish(ctx, u, f, end); err != nil {
		return false, err
	}
	if err := s.confirm(ctx, u.name, end); err != nil {
		u.reset()
		return false, err
	}
	if err := removeSpool(path); err != nil {
		return false, err
	}
	return true, nil
}

// recover gives an upload found in the spool at start its session's end:
// the recorded one, or, for a session its jitd left live (or none at all),
// the end of the spool file with the file's own digest.
func (s *Store) recover(ctx context.Context, u *upload, end SessionEnd) (SessionEnd, error) {
	e, found, err := s.cfg.Lookup(ctx, u.name)
	if err != nil {
		return end, fmt.Errorf("look up the session of %s: %w", u.name, err)
	}
	if found && e.Ended {
		end = e
	}
	end.Ended, u.recovered, u.checkStored = true, false, true
	s.mu.Lock()
	u.end = end
	s.mu.Unlock()
	return end, nil
}

// checkSpool compares the ended spool file f with the digest the chain
// recorded (filling end's digest from the file when none was), before
// anything is completed or overwritten: an altered spool file must not
// replace a good object. A mismatch parks u and reports false.
func (s *Store) checkSpool(ctx context.Context, u *upload, f *os.File, path string, end *SessionEnd) (bool, error) {
	if end.SHA256 == "" {
		var err error
		if end.SHA256, end.Size, err = digest(f); err != nil {
			return false, fmt.Errorf("digest spool file %s: %w", path, err)
		}
	}
	if u.spooled != end.Size {
		s.park(ctx, u, fmt.Sprintf("spool file is %d bytes, the audit chain recorded %d", u.spooled, end.Size))
		return false, nil
	}
	if u.verified {
		return true, nil
	}
	got, n, err := digest(io.NewSectionReader(f, 0, end.Size))
	if err != nil {
		return false, fmt.Errorf("digest spool file %s: %w", path, err)
	}
	if n != end.Size || got != end.SHA256 {
		s.park(ctx, u, fmt.Sprintf("spool file has SHA-256 %s over %d bytes, the audit chain recorded %s over %d", got, n, end.SHA256, end.Size))
		return false, nil
	}
	u.verified = true
	return true, nil
}

// alreadyStored handles a spool file left by a run that may have stored
// and confirmed it but not removed the file: it confirms what is there
// rather than upload again. done means the object checked out and the
// spool file is gone.
func (s *Store) alreadyStored(ctx context.Context, u *upload, path string, end SessionEnd) (done bool, err error) {
	key := s.cfg.Location.key(u.name)
	info, err := s.client.StatObject(ctx, s.cfg.Location.Bucket, key, minio.StatObjectOptions{})
	switch {
	case err == nil && info.Size == end.Size:
		if s.confirm(ctx, u.name, end) == nil {
			if err := removeSpool(path); err != nil {
				return false, err
			}
			return true, nil
		}
	case err != nil && minio.ToErrorResponse(err).Code != "NoSuchKey":
		return false, fmt.Errorf("stat %s: %w", key, err)
	}
	u.checkStored = false
	return false, nil
}

// removeSpool removes an uploaded and confirmed spool file.
func removeSpool(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove uploaded spool file: %w", err)
	}
	return nil
}

// park stops retrying u, whose spool file differs from what the chain
// recorded: the multipart upload is aborted (nothing is completed over the
// object), the file stays for an operator, and the backlog counts it parked.
func (s *Store) park(ctx context.Context, u *upload, why string) {
	if u.id != "" {
		if err := s.client.AbortMultipartUpload(ctx, s.cfg.Location.Bucket, s.cfg.Location.key(u.name), u.id); err != nil {
			s.cfg.Logger.Warn("recordings upload: abort multipart upload", "recording", u.name, "err", err)
		}
	}
	u.reset()
	u.parked = true
	s.cfg.Logger.Error("recordings upload: parked, the spool file differs from the audit chain; kept for an operator to look at, not uploaded", "recording", u.name, "path", filepath.Join(s.cfg.Spool, filepath.FromSlash(u.name)), "reason", why)
}

// partSize is the size of the next part after sent bytes of a recording
// spooled to size: never under base, nor size/9000 (a recording of known
// size fits in 9,000 parts), nor sent/1000 (a growing one: each part adds
// a thousandth, so 5 TiB, S3's largest object, fits well within S3's 10,000
// parts); and never over 5 GiB, S3's largest part.
func partSize(base, sent, size int64) int64 {
	return min(maxPartSize, max(base, (size+8999)/9000, sent/1000))
}

// maxPartSize is the largest part S3 accepts.
const maxPartSize = 5 << 30

// reset forgets the multipart upload, so the next step starts again from
// the first byte.
func (u *upload) reset() { u.id, u.parts, u.sent = "", nil, 0 }

// sendParts uploads whole parts of f up to size; with last, the rest too,
// however small (S3 lets only the last part be under 5 MiB).
func (s *Store) sendParts(ctx context.Context, u *upload, f *os.File, size int64, last bool) error {
	key := s.cfg.Location.key(u.name)
	for size-u.sent >= partSize(s.cfg.PartSize, u.sent, size) || (last && size > u.sent) {
		if u.id == "" {
			id, err := s.client.NewMultipartUpload(ctx, s.cfg.Location.Bucket, key, minio.PutObjectOptions{ContentType: contentType(u.name)})
			if err != nil {
				return fmt.Errorf("start multipart upload of %s: %w", key, err)
			}
			u.id = id
		}
		n := min(partSize(s.cfg.PartSize, u.sent, size), size-u.sent)
		if last && size-u.sent-n < MinPartSize {
			n = size - u.sent // the remainder goes with the last part, never a small part after it
		}
		num := len(u.parts) + 1
		p, err := s.client.PutObjectPart(ctx, s.cfg.Location.Bucket, key, u.id, num, io.NewSectionReader(f, u.sent, n), n, minio.PutObjectPartOptions{})
		if err != nil {
			if minio.ToErrorResponse(err).Code == "NoSuchUpload" {
				u.reset()
			}
			return fmt.Errorf("upload part %d of %s (bytes %d to %d): %w", num, key, u.sent, u.sent+n, err)
		}
		u.parts = append(u.parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
		u.sent += n
	}
	return nil
}

// finish stores the whole of an ended recording: one PUT when it is
// smaller than a part and none was sent, else the last part and the
// completion of the multipart upload.
func (s *Store) finish(ctx context.Context, u *upload, f *os.File, end SessionEnd) error {
	key := s.cfg.Location.key(u.name)
	if u.id == "" && end.Size < s.cfg.PartSize {
		// The chain's digest is the payload hash the request is signed
		// with, so the store refuses bytes that differ from it.
		_, err := s.client.PutObject(ctx, s.cfg.Location.Bucket, key, io.NewSectionReader(f, 0, end.Size), end.Size, "", end.SHA256,
			minio.PutObjectOptions{ContentType: contentType(u.name)})
		if err != nil {
			return fmt.Errorf("upload %s: %w", key, err)
		}
		u.sent = end.Size
		return nil
	}
	if err := s.sendParts(ctx, u, f, end.Size, true); err != nil {
		return err
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, s.cfg.Location.Bucket, key, u.id, u.parts, minio.PutObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchUpload" {
			u.reset()
		}
		return fmt.Errorf("complete multipart upload of %s: %w", key, err)
	}
	return nil
}

// confirm reads the stored object back and compares its size and SHA-256
// with the chain's: a multipart object's ETag is no digest of its bytes.
func (s *Store) confirm(ctx context.Context, name string, end SessionEnd) error {
	key := s.cfg.Location.key(name)
	rc, info, _, err := s.client.GetObject(ctx, s.cfg.Location.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("read back %s: %w", key, err)
	}
	defer rc.Close()
	if info.Size != end.Size {
		return fmt.Errorf("stored object %s is %d bytes, the audit chain recorded %d", key, info.Size, end.Size)
	}
	got, n, err := digest(rc)
	if err != nil {
		return fmt.Errorf("read back %s: %w", key, err)
	}
	if n != end.Size || got != end.SHA256 {
		return fmt.Errorf("stored object %s has SHA-256 %s over %d bytes, the audit chain recorded %s over %d", key, got, n, end.SHA256, end.Size)
	}
	return nil
}

func digest(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// contentType is what replay is served as: zstd frames, or plain asciicast.
func contentType(name string) string {
	if filepath.Ext(name) == ".zst" {
		return "application/zstd"
	}
	return "application/x-asciicast"
}

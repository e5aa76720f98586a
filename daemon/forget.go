package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/recstore"
)

// eventReplicaForgotten records jitd replica forget.
const eventReplicaForgotten = "replica.forgotten"

// ForgetConfig says which replica jitd replica forget removes, from which
// store, and where its recordings would be.
type ForgetConfig struct {
	Layout     Layout
	ID         string
	Recordings recstore.Location
	S3         recstore.S3Config
	Clock      func() time.Time // nil: time.Now
}

// ForgottenSession is one live session of a forgotten replica, as ended.
type ForgottenSession struct {
	ID, User, Host, Login string
	EndReason             string // audit.EndJitdStopped (its object was stored) or audit.EndRecordingLost
	RecordingSize         int64
}

// ForgetReplica is jitd replica forget: for a replica that is down (no
// heartbeat for longer than a replica's TTL, or stopped cleanly) and not
// coming back, it ends the sessions its rows still say are live and
// removes it from the registry, in one audit transaction with a
// replica.forgotten event naming the operator. A session whose recording
// is a completed object in the object store ends as audit.EndJitdStopped
// with that object's digest; any other (its spool was on the lost machine;
// multipart parts are not an object) as audit.EndRecordingLost. An up
// replica is refused with audit.ErrReplicaUp, also when it beats again
// while this runs; an unknown ID is audit.ErrNotFound.
func ForgetReplica(ctx context.Context, cfg ForgetConfig) ([]ForgottenSession, error) {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if err := cfg.Layout.CheckModes(); err != nil {
		return nil, err
	}
	store, err := cfg.Layout.OpenStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("open audit store: %w", err)
	}
	defer store.Close()
	ttl := 3 * defaultBeat
	r, now, err := store.Replica(ctx, cfg.ID)
	if err != nil {
		return nil, fmt.Errorf("%w (jit replicas lists the registry)", err)
	}
	if up(r, now, ttl) {
		return nil, fmt.Errorf("replica %s is up: it beat %s ago, within its TTL %s; stop it, or wait until it is down: %w",
			cfg.ID, now.Sub(r.HeartbeatAt).Round(time.Millisecond), ttl, audit.ErrReplicaUp)
	}
	recs, err := recstore.Open(recstore.Config{Location: cfg.Recordings, S3: cfg.S3, Spool: cfg.Layout.Recordings(),
		Lookup: func(context.Context, string) (recstore.SessionEnd, bool, error) {
			return recstore.SessionEnd{}, false, nil
		},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("recordings store %s: %w", cfg.Recordings, err)
	}
	live, err := store.Sessions(ctx, audit.SessionFilter{Live: true})
	if err != nil {
		return nil, fmt.Errorf("list live sessions: %w", err)
	}
	var ends []audit.SessionEnd
	var out []ForgottenSession
	for _, x := range live {
		if x.Replica != cfg.ID {
			continue
		}
		end, err := forgottenEnd(ctx, recs, x, cfg.Clock())
		if err != nil {
			return nil, fmt.Errorf("session %s: %w", x.ID, err)
		}
		ends = append(ends, end)
		out = append(out, ForgottenSession{ID: x.ID, User: x.User, Host: x.Host, Login: x.Login, EndReason: end.EndReason, RecordingSize: end.RecordingSize})
	}
	err = store.Do(ctx, func(tx *audit.Tx) error { return recordForget(tx, cfg.ID, ttl, ends, cfg.Clock()) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// recordForget removes the replica (refused if it beat again meanwhile),
// ends its sessions and records the operator's act, all or nothing.
func recordForget(tx *audit.Tx, id string, ttl time.Duration, ends []audit.SessionEnd, now time.Time) error {
	if err := tx.ForgetReplica(id, ttl); err != nil {
		return err
	}
	lost := 0
	for _, end := range ends {
		if err := tx.EndSession(end); err != nil {
			return err
		}
		if end.EndReason == audit.EndRecordingLost {
			lost++
		}
	}
	actor := operator("jitd replica forget")
	_, err := tx.Append(audit.Event{Time: now.UTC(), Type: eventReplicaForgotten, Code: "ok", Actor: actor,
		Message: "replica " + id + " forgotten", Data: map[string]string{
			"replica": id, "sessions_ended": strconv.Itoa(len(ends)), "recordings_lost": strconv.Itoa(lost),
		}})
	return err
}

// forgottenEnd is the end of live session x of a forgotten replica: its
// object's digest and byte counts when the object store holds it, else
// recording lost.
func forgottenEnd(ctx context.Context, recs *recstore.Store, x audit.Session, now time.Time) (audit.SessionEnd, error) {
	end := audit.SessionEnd{ID: x.ID, EndedAt: later(now, x.StartedAt), ExitStatus: -1, EndReason: audit.EndRecordingLost}
	if x.RecordingPath == "" {
		return end, nil
	}
	rc, found, err := recs.OpenStored(ctx, recs.Name(x.RecordingPath))
	if err != nil || !found {
		return end, err
	}
	defer rc.Close()
	h := sha256.New()
	var size byteCount
	tee := io.TeeReader(rc, io.MultiWriter(h, &size))
	// The object is kept as stored, a torn last frame included: only a
	// spool file is cut (crashEnd).
	c := countRecording(tee)
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return end, fmt.Errorf("read its stored recording: %w", err)
	}
	end.BytesIn, end.BytesOut, end.EndReason = c.in, c.out, audit.EndJitdStopped
	end.RecordingPath, end.RecordingSHA256, end.RecordingSize = x.RecordingPath, hex.EncodeToString(h.Sum(nil)), int64(size)
	return end, nil
}

// byteCount counts the bytes written to it.
type byteCount int64

func (n *byteCount) Write(p []byte) (int, error) {
	*n += byteCount(len(p))
	return len(p), nil
}

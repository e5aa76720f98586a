// Package recstore is where finished and growing session recordings live.
//
// The bastion always writes a recording to the spool directory, a frame
// fsynced every second as today, so that a crash loses at most a second.
// With the default Location that directory is the store. With an S3
// Location a Store uploads each recording while it grows (multipart, parts
// of PartSize as frames accumulate, the last part at the session's end),
// completes the upload, reads the object back to check its size and
// SHA-256 against what the audit chain recorded, and only then removes the
// spool file. The spool is the queue: an upload that fails is retried with
// backoff for as long as it takes, and at Open every spool file left by an
// earlier run is queued again. FS reads a recording from the spool while it
// is there and from the object store after.
package recstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// MinPartSize is the smallest part S3 accepts but for the last.
const MinPartSize = 5 << 20

// Defaults of Config.
const (
	DefaultPoll       = time.Second
	DefaultRetryFirst = time.Second
	DefaultRetryMax   = time.Minute
)

// SessionEnd is what the audit chain recorded of a recording: its size and
// SHA-256 (hex), which the uploaded object must have.
type SessionEnd struct {
	Ended  bool // false: the row says live (its jitd stopped mid-session)
	SHA256 string
	Size   int64
}

// Config says where recordings go.
type Config struct {
	Location Location
	S3       S3Config
	// Spool is the directory the bastion writes recordings under (the data
	// directory's recordings directory). Required.
	Spool string
	// Lookup returns what the chain recorded of the recording name (its
	// session's end), for spool files left by an earlier run; found false
	// when no session names it. Required with a remote Location.
	Lookup func(ctx context.Context, name string) (end SessionEnd, found bool, err error)
	// PartSize is the size of each multipart part but the last; zero means
	// MinPartSize, and less than MinPartSize is an error.
	PartSize int64
	// Poll is how often growing recordings are looked at; zero is
	// DefaultPoll. RetryFirst and RetryMax bound the backoff after a failed
	// upload step; zero means the defaults.
	Poll, RetryFirst, RetryMax time.Duration
	Logger                     *slog.Logger
}

// Backlog is what the spool holds that the object store does not yet.
type Backlog struct {
	Files int   // recordings not yet confirmed uploaded, live ones included
	Bytes int64 // their bytes not yet in a stored part or object
	// Parked are those of Files whose spool file differs from what the
	// audit chain recorded: kept in the spool, not retried.
	Parked int
}

// Store is the recordings store. Its methods are safe for concurrent use.
type Store struct {
	cfg    Config
	client *minio.Core // nil for a local Location

	mu      sync.Mutex
	uploads map[string]*upload // by name, while not confirmed uploaded
	backlog Backlog

	kick    chan struct{}
	drain   chan struct{} // closed by Close: finish what has ended, then stop
	stop    context.CancelFunc
	done    chan struct{}
	started bool
}

// Open returns the store of cfg. With a remote Location it lists the spool
// files an earlier run left (each is uploaded once Start runs, with the
// digest Lookup gives) and checks nothing over the network, so that jitd
// starts while the object store is down.
func Open(cfg Config) (*Store, error) {
	if cfg.Spool == "" {
		return nil, errors.New("recstore: config: Spool is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Poll = cmpOr(cfg.Poll, DefaultPoll)
	cfg.RetryFirst = cmpOr(cfg.RetryFirst, DefaultRetryFirst)
	cfg.RetryMax = cmpOr(cfg.RetryMax, DefaultRetryMax)
	if cfg.PartSize == 0 {
		cfg.PartSize = MinPartSize
	}
	s := &Store{cfg: cfg, uploads: map[string]*upload{}, kick: make(chan struct{}, 1), drain: make(chan struct{}), done: make(chan struct{})}
	if !cfg.Location.Remote() {
		return s, nil
	}
	if cfg.PartSize < MinPartSize {
		return nil, fmt.Errorf("recstore: part size %d is below S3's minimum %d", cfg.PartSize, MinPartSize)
	}
	if cfg.Lookup == nil {
		return nil, errors.New("recstore: config: Lookup is required with object storage")
	}
	var err error
	if s.client, err = newClient(cfg.S3); err != nil {
		return nil, err
	}
	left, err := spoolFiles(cfg.Spool)
	if err != nil {
		return nil, err
	}
	for _, name := range left {
		s.uploads[name] = &upload{name: name, recovered: true}
	}
	return s, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// spoolFiles lists the recordings under dir, as names relative to it.
func spoolFiles(dir string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipAll
			}
			return err
		}
		if !d.Type().IsRegular() || !isRecording(p) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list spool %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// isRecording says whether p is named as the bastion names recordings
// (.cast.zst, and .cast from before compression).
func isRecording(p string) bool {
	return strings.HasSuffix(p, ".cast.zst") || strings.HasSuffix(p, ".cast")
}

// Remote reports whether recordings are uploaded to object storage.
func (s *Store) Remote() bool { return s.client != nil }

// Location is where finished recordings live.
func (s *Store) Location() Location { return s.cfg.Location }

// Name is the location a session row stores for the recording the bastion
// writes at path: its name relative to the spool, slash-separated, which is
// also its object key under the prefix. A path outside the spool is kept
// as it is (audit.Recordings refuses it when read).
func (s *Store) Name(path string) string {
	if path == "" || !filepath.IsAbs(path) {
		return path
	}
	rel, err := filepath.Rel(filepath.Clean(s.cfg.Spool), filepath.Clean(path))
	if err != nil || !filepath.IsLocal(rel) {
		return path
	}
	return filepath.ToSlash(rel)
}

// Started queues the growing recording at path (a bastion path or a name)
// for upload as it grows. It does nothing for a local Location.
func (s *Store) Started(path string) {
	if !s.Remote() || path == "" {
		return
	}
	name := s.Name(path)
	s.mu.Lock()
	if _, ok := s.uploads[name]; !ok {
		s.uploads[name] = &upload{name: name}
	}
	s.mu.Unlock()
}

// Ended says the recording at path is complete with the size and SHA-256
// the chain records; its upload is then completed, checked and the spool
// file removed. It does nothing for a local Location.
func (s *Store) Ended(path, sha256hex string, size int64) {
	if !s.Remote() || path == "" {
		return
	}
	name := s.Name(path)
	s.mu.Lock()
	u, ok := s.uploads[name]
	if !ok {
		u = &upload{name: name}
		s.uploads[name] = u
	}
	u.end = SessionEnd{Ended: true, SHA256: sha256hex, Size: size}
	s.mu.Unlock()
	s.wake()
}

func (s *Store) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Backlog is what waits in the spool for the object store now.
func (s *Store) Backlog() Backlog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backlog
}

// Start starts uploading (nothing for a local Location). Call it once.
func (s *Store) Start() {
	if !s.Remote() || s.started {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.run(ctx)
}

// Close finishes the uploads of recordings that have ended, waiting until
// ctx is done at most; what is left stays in the spool and is uploaded at
// the next Open. Call it once no more recordings start.
func (s *Store) Close(ctx context.Context) {
	if !s.started {
		return
	}
	close(s.drain)
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cfg.Logger.Warn("recordings upload: stopping with uploads pending; they stay in the spool for the next start", "backlog_files", s.Backlog().Files)
	}
	s.stop()
	<-s.done
}

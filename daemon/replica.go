package daemon

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jitssh/jitssh/atomicfile"
	"github.com/jitssh/jitssh/audit"
)

// Replica timing. A replica beats (and renews the housekeeping lease)
// every defaultBeat; it counts as up, and its lease as held, for three
// beats: one or two lost beats (a slow database round) lose nothing, and a
// replica killed with -9 is replaced within replicaTTL.
const (
	defaultBeat       = 5 * time.Second
	defaultCheckpoint = time.Minute
	leaseHousekeeping = "housekeeping"
)

// validReplicaID is what a replica ID may be: it is shown in logs and
// jit replicas and stored in every session row.
var validReplicaID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// replica is this process's place among the replicas on one store: its
// lasting ID, its random instance, its entry in the registry and its own
// count of the housekeeping lease.
type replica struct {
	id, instance string
	advertise    string // https://HOST:PORT of this replica's API
	bastionAddr  string
	version      string
	beat         time.Duration
	store        *audit.Store
	log          *slog.Logger
	policyFile   string

	digest atomic.Pointer[string] // SHA-256 of the policy file last loaded

	// displaced gets ErrTwin's error once another process took this
	// replica's ID over (this one stalled past the freshness window):
	// Serve then stops, since two processes would own one ID's sessions.
	displaced chan error

	mu        sync.Mutex
	leaseTill time.Time // monotonic: the lease is ours until then by our count
	warned    string    // the policy digests last warned about
}

func (r *replica) ttl() time.Duration { return 3 * r.beat }

// loadReplicaID returns id if set, or else the data directory's
// replica-id file, made with 8 random bytes in hex on first use.
func loadReplicaID(dir, id string) (string, error) {
	if id != "" {
		if !validReplicaID.MatchString(id) {
			return "", fmt.Errorf("replica id %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
		}
		return id, nil
	}
	path := filepath.Join(dir, "replica-id")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		var raw [8]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", fmt.Errorf("make replica id: %w", err)
		}
		id = hex.EncodeToString(raw[:])
		if err := atomicfile.Create(path, []byte(id+"\n"), 0o644); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("write replica id %s: %w", path, err)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read replica id: %w", err)
	}
	id = strings.TrimSpace(string(b))
	if !validReplicaID.MatchString(id) {
		return "", fmt.Errorf("replica id %q in %s: want 1 to 64 letters, digits, '.', '_' or '-'", id, path)
	}
	return id, nil
}

// advertiseURL checks the --advertise-url given, or makes the default from
// the API's listening address: that address when it is a specific IP,
// else this host's name with the port.
func advertiseURL(given, listening string) (string, error) {
	if given != "" {
		u, err := url.Parse(given)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", fmt.Errorf("advertise URL %q: want https://HOST:PORT", given)
		}
		return "https://" + u.Host, nil
	}
	host, port, err := net.SplitHostPort(listening)
	if err != nil {
		return "", fmt.Errorf("advertise URL from API address %q: %w", listening, err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("advertise URL: host name: %w", err)
		}
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// buildVersion is the module version and VCS revision jitd was built from.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}

// newInstance is a random value per process: what tells this process's
// beats from those of another running as the same replica.
func newInstance() (string, error) {
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("make replica instance: %w", err)
	}
	return hex.EncodeToString(raw[:]), nil
}

// policyLoaded records the digest of the policy file just loaded.
func (r *replica) policyLoaded() {
	b, err := os.ReadFile(r.policyFile)
	if err != nil {
		r.log.Warn("policy digest", "err", err)
		return
	}
	sum := sha256.Sum256(b)
	s := hex.EncodeToString(sum[:])
	r.digest.Store(&s)
}

func (r *replica) row() audit.Replica {
	var digest string
	if p := r.digest.Load(); p != nil {
		digest = *p
	}
	return audit.Replica{ID: r.id, AdvertiseURL: r.advertise, BastionAddr: r.bastionAddr, Instance: r.instance, Version: r.version, PolicySHA256: digest}
}

// register makes the first beat. A fresh beat of another instance under
// this ID is either a twin (a copied data directory: it goes on beating)
// or a predecessor killed without retiring (it does not): register waits
// up to one TTL to tell them apart, and refuses a twin.
func (r *replica) register(ctx context.Context) error {
	deadline := time.Now().Add(r.ttl() + r.beat)
	var seen time.Time
	for {
		err := r.store.Do(ctx, func(tx *audit.Tx) error { return tx.Heartbeat(r.row(), r.ttl()) })
		if !errors.Is(err, audit.ErrTwin) {
			return err
		}
		other, _, rerr := r.store.Replica(ctx, r.id)
		if rerr != nil {
			return rerr
		}
		if !seen.IsZero() && other.HeartbeatAt.After(seen) {
			return fmt.Errorf("replica id %s is in use by another running jitd (instance %s, advertising %s, beating every few seconds): "+
				"give each replica its own --replica-id or DATA/replica-id: %w", r.id, other.Instance, other.AdvertiseURL, err)
		}
		seen = other.HeartbeatAt
		if time.Now().After(deadline) {
			return fmt.Errorf("replica id %s: %w", r.id, err)
		}
		r.log.Info("replica id was beating recently: waiting to see whether that process still runs", "replica", r.id, "other_instance", other.Instance)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.beat / 2):
		}
	}
}

// tick beats and takes or renews the housekeeping lease, counting the
// lease from the instant before asking (the monotonic rule of
// audit/leases.go).
func (r *replica) tick(ctx context.Context) {
	// One transaction, one commit: the beat and the lease together.
	asked := time.Now()
	var held bool
	err := r.store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.Heartbeat(r.row(), r.ttl()); err != nil {
			return err
		}
		var err error
		held, err = tx.AcquireLease(leaseHousekeeping, r.instance, r.ttl())
		return err
	})
	r.mu.Lock()
	was := !r.leaseTill.IsZero() && time.Now().Before(r.leaseTill)
	switch {
	case errors.Is(err, audit.ErrTwin):
		r.leaseTill = time.Time{}
		select {
		case r.displaced <- err:
		default:
		}
	case err != nil:
		// Unknown: keep our count, which runs out by itself.
		r.log.Warn("replica heartbeat and housekeeping lease", "replica", r.id, "err", err)
	case held:
		r.leaseTill = asked.Add(r.ttl())
	default:
		r.leaseTill = time.Time{}
	}
	now := !r.leaseTill.IsZero() && time.Now().Before(r.leaseTill)
	r.mu.Unlock()
	if now != was {
		r.log.Info("housekeeping lease", "replica", r.id, "held", now)
	}
	r.checkPolicies(ctx)
}

// holds reports whether this replica holds the housekeeping lease by its
// own count.
func (r *replica) holds() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.leaseTill.IsZero() && time.Now().Before(r.leaseTill)
}

// run beats every r.beat until ctx is done.
func (r *replica) run(ctx context.Context) {
	t := time.NewTicker(r.beat)
	defer t.Stop()
	for {
		r.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkPolicies warns, once per set of digests, when live replicas run
// different policy files: each reads its own, and they should be equal.
func (r *replica) checkPolicies(ctx context.Context) {
	all, now, err := r.store.Replicas(ctx)
	if err != nil {
		return
	}
	mine := r.row().PolicySHA256
	var differ []string
	for _, o := range all {
		if o.ID != r.id && up(o, now, r.ttl()) && o.PolicySHA256 != mine {
			differ = append(differ, o.ID+"="+short(o.PolicySHA256))
		}
	}
	key := strings.Join(differ, ",")
	r.mu.Lock()
	changed := key != r.warned
	r.warned = key
	r.mu.Unlock()
	if changed && key != "" {
		r.log.Warn("live replicas run different policy files (each reads its own: distribute one file to all)", "replica", r.id, "policy_sha256", short(mine), "others", key)
	}
}

func short(digest string) string { return digest[:min(len(digest), 12)] }

// up reports whether o beat within ttl of the database's now.
func up(o audit.Replica, now time.Time, ttl time.Duration) bool {
	return !o.HeartbeatAt.IsZero() && now.Sub(o.HeartbeatAt) < ttl
}

// retire signs the final checkpoint if this replica may (it holds the
// housekeeping lease, or takes it now that it is free), then releases the
// lease and marks the replica stopped. Another holder signs within a
// minute anyway, covering whatever this replica appended.
func (r *replica) retire(ctx context.Context, sign func() error) error {
	var signErr error
	held, err := r.store.AcquireLease(ctx, leaseHousekeeping, r.instance, r.ttl())
	if err != nil {
		signErr = fmt.Errorf("housekeeping lease: %w", err)
	}
	if held {
		signErr = sign()
	} else if err == nil {
		r.log.Info("final checkpoint left to the replica holding the housekeeping lease")
	}
	if err := r.store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.ReleaseLease(leaseHousekeeping, r.instance); err != nil {
			return err
		}
		return tx.RetireReplica(r.id, r.instance)
	}); err != nil {
		r.log.Warn("retire replica", "err", err)
	}
	return signErr
}

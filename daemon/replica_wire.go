package daemon

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/apiserver"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// accountHoldTTL bounds how long one ephemeral account's create or
// removal holds its lease: far above one helper run over SSH (its dial and
// handshake are bounded), so that only a holder that died loses it.
const accountHoldTTL = 2 * time.Minute

// newReplica makes this process's replica from Config, once the store and
// the policy are open.
func (d *Daemon) newReplica() (*replica, error) {
	id, err := loadReplicaID(d.cfg.Dir, d.cfg.ReplicaID)
	if err != nil {
		return nil, err
	}
	instance, err := newInstance()
	if err != nil {
		return nil, err
	}
	r := &replica{id: id, instance: instance, version: buildVersion(), beat: cmp.Or(d.cfg.beat, defaultBeat),
		store: d.store, log: d.log.With("component", "replica"), policyFile: Layout{Dir: d.cfg.Dir}.PolicyFile()}
	r.policyLoaded()
	return r, nil
}

// registerReplica fills in the addresses now that the listeners are open
// and makes the first beat, refusing a twin.
func (d *Daemon) registerReplica(ctx context.Context) error {
	r := d.replica
	var err error
	if r.advertise, err = advertiseURL(d.cfg.AdvertiseURL, d.addrs.API); err != nil {
		return err
	}
	r.bastionAddr = advertisedBastion(d.addrs.Bastion, d.cfg.PublicAddrs)
	if err := r.register(ctx); err != nil {
		return err
	}
	d.log.Info("replica registered", "replica", r.id, "instance", r.instance, "advertise_url", r.advertise)
	return nil
}

// ownIndexCatchUps lists the search index catch-ups this replica does at
// start: those of its own sessions, and of ended sessions whose replica is
// unknown (from before replicas) or down, which any replica can read from
// the object store or the shared directory (each of those under a lease,
// in finishIndexing). A live session of another replica is never caught
// up here: its recording is in that replica's spool and its position is
// stored mid-session.
func (d *Daemon) ownIndexCatchUps(ctx context.Context) ([]audit.PendingIndex, error) {
	all, err := d.store.PendingIndexes(ctx)
	if err != nil {
		return nil, err
	}
	reps, now, err := d.store.Replicas(ctx)
	if err != nil {
		return nil, err
	}
	down := map[string]bool{"": true}
	for _, o := range reps {
		down[o.ID] = !up(o, now, d.replica.ttl())
	}
	var out []audit.PendingIndex
	for _, p := range all {
		if p.Replica == d.replica.id || (!p.EndedAt.IsZero() && (down[p.Replica] || !knownReplica(reps, p.Replica))) {
			out = append(out, p)
		}
	}
	return out, nil
}

func knownReplica(reps []audit.Replica, id string) bool {
	for _, r := range reps {
		if r.ID == id {
			return true
		}
	}
	return false
}

// exclusive holds the lease key among the replicas, waiting (bounded by
// ctx) while another holds it, and renews it while held; release frees it.
func (d *Daemon) exclusive(ctx context.Context, key string) (func(), error) {
	holder := d.replica.instance
	wait := 100 * time.Millisecond
	for {
		held, err := d.store.AcquireLease(ctx, key, holder, accountHoldTTL)
		if err != nil {
			return nil, err
		}
		if held {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %q held by another replica: %w", key, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	return func() {
		if err := d.store.ReleaseLease(context.Background(), key, holder); err != nil {
			d.log.Warn("release lease", "lease", key, "err", err)
		}
	}, nil
}

// sweepAccounts removes due ephemeral accounts on the replica holding the
// housekeeping lease (each removal also holds its account's own lease, so
// a sweep that outlives a lost lease still never races another's).
func (d *Daemon) sweepAccounts(ctx context.Context) {
	t := time.NewTicker(min(5*time.Second, d.replica.beat))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !d.replica.holds() {
			continue
		}
		if _, err := d.accounts.Sweep(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("sweep ephemeral accounts", "err", err)
		}
	}
}

// liveElsewhere reports whether a session of request id is live, by the
// store, on another replica that is up; an error counts as live, so that
// no account is removed under a session that may be running.
func (d *Daemon) liveElsewhere(id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	owners, err := d.store.LiveSessionReplicas(ctx, id)
	if err != nil || len(owners) == 0 {
		return err != nil
	}
	reps, now, err := d.store.Replicas(ctx)
	if err != nil {
		return true
	}
	for _, o := range owners {
		for _, r := range reps {
			if r.ID == o && o != d.replica.id && up(r, now, d.replica.ttl()) {
				return true
			}
		}
	}
	return false
}

// sharedViewKey derives the console's view-ticket key from the API's TLS
// private key, which every replica serves, so that a player page opened
// through one replica streams through another; a key made at each start
// would make every other replica refuse the page's tickets.
func sharedViewKey(cert tls.Certificate) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("console view key from the TLS key: %w", err)
	}
	m := hmac.New(sha256.New, der)
	m.Write([]byte("jitssh console view tickets v1"))
	return m.Sum(nil), nil
}

// consoleProxy is api's ProxyLive for the console, its refusals made the
// grant errors the console answers with.
func consoleProxy(srv *apiserver.Server) func(http.ResponseWriter, *http.Request, audit.Session) (bool, error) {
	return func(w http.ResponseWriter, r *http.Request, x audit.Session) (bool, error) {
		done, err := srv.ProxyLive(w, r, x)
		if err != nil {
			return false, &grant.Error{Kind: grant.KindUnavailable, Code: api.CodeReplicaUnavailable, Message: err.Error(), Err: err}
		}
		return done, nil
	}
}

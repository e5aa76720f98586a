package daemon

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
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
	r := &replica{id: id, instance: instance, version: buildVersion(), beat: cmp.Or(d.cfg.beat, defaultBeat), displaced: make(chan error, 1),
		store: d.store, log: d.log.With("component", "replica"), policyFile: Layout{Dir: d.cfg.Dir}.PolicyFile()}
	r.policyLoaded()
	return r, nil
}

// claimReplica makes the first beat, refusing a twin, before the bastion
// or the recordings' uploads start: a copied data directory must not take
// a single connection or upload under another's ID. The addresses not
// known yet (the listeners are not open) are filled in by registerReplica.
func (d *Daemon) claimReplica(ctx context.Context) error {
	if d.cfg.AdvertiseURL != "" {
		var err error
		if d.replica.advertise, err = advertiseURL(d.cfg.AdvertiseURL, ""); err != nil {
			return err
		}
	}
	return d.replica.register(ctx)
}

// registerReplica fills in the addresses now that the listeners are open
// and beats with them.
func (d *Daemon) registerReplica(ctx context.Context) error {
	r := d.replica
	var err error
	if r.advertise, err = advertiseURL(d.cfg.AdvertiseURL, d.addrs.API); err != nil {
		return err
	}
	r.bastionAddr = advertisedBastion(d.addrs.Bastion, d.cfg.PublicAddrs)
	if err := r.store.Do(ctx, func(tx *audit.Tx) error { return tx.Heartbeat(r.row(), r.ttl()) }); err != nil {
		return fmt.Errorf("replica %s: beat with its addresses: %w", r.id, err)
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

// exclusive holds the lease key among the replicas for accountHoldTTL
// at a time (hold).
func (d *Daemon) exclusive(ctx context.Context, key string) (context.Context, func(), error) {
	return d.hold(ctx, key, accountHoldTTL)
}

// errLeaseLost is the cause of a hold's context once its lease could not
// be renewed: another replica may hold it now.
var errLeaseLost = errors.New("lease lost")

// hold takes the lease key among the replicas for ttl, waiting (bounded by
// ctx) while another holds it, and renews it every ttl/3 while held. The
// context returned is ctx's child and is cancelled (cause errLeaseLost)
// once a renewal finds another holder, or failed until too little of the
// lease is left to count on: the work under it must stop, since another
// replica may take the lease over. release stops the renewals and frees
// the lease.
func (d *Daemon) hold(ctx context.Context, key string, ttl time.Duration) (context.Context, func(), error) {
	holder := d.replica.instance
	wait := 100 * time.Millisecond
	var sent time.Time
	for {
		sent = time.Now()
		held, err := d.store.AcquireLease(ctx, key, holder, ttl)
		if err != nil {
			return nil, nil, err
		}
		if held {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("wait for %q held by another replica: %w", key, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	hctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { d.renew(hctx, cancel, stop, key, ttl, sent) })
	var once sync.Once
	return hctx, func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			lost := context.Cause(hctx) == errLeaseLost
			cancel(nil)
			if lost {
				return // another may hold it now: not ours to free
			}
			if err := d.store.ReleaseLease(context.Background(), key, holder); err != nil {
				d.log.Warn("release lease", "lease", key, "err", err)
			}
		})
	}, nil
}

// renew keeps hold's lease until stop is closed or hctx is done. A lease
// counts from the instant before its acquire was sent (audit/leases.go);
// a failed renewal is retried while more than ttl/6 of it is left, and
// then the hold is given up.
func (d *Daemon) renew(hctx context.Context, cancel context.CancelCauseFunc, stop <-chan struct{}, key string, ttl time.Duration, sent time.Time) {
	holder := d.replica.instance
	next := ttl / 3
	for {
		t := time.NewTimer(next)
		select {
		case <-stop:
			t.Stop()
			return
		case <-hctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		at := time.Now()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(hctx), max(ttl/6, time.Millisecond))
		held, err := d.store.AcquireLease(rctx, key, holder, ttl)
		rcancel()
		switch {
		case err == nil && held:
			sent, next = at, ttl/3
			continue
		case err == nil:
			d.log.Warn("lease taken over by another replica; stopping the work under it", "lease", key)
		case time.Until(sent.Add(ttl)) > ttl/6+ttl/30:
			d.log.Warn("renew lease; retrying", "lease", key, "err", err)
			next = ttl / 30
			continue
		default:
			d.log.Warn("renew lease failed too long; stopping the work under it", "lease", key, "err", err)
		}
		cancel(errLeaseLost)
		return
	}
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

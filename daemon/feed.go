package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/livepolicy"
)

// The change feed between replicas (docs/scale-out.md, "Several replicas:
// the change feed"): every replica tails the audit chain from the head it
// saw at start (audit.Feed) and applies what other replicas changed to
// what it holds in memory. It wires; it decides nothing: the bastion
// re-asks the store before it cuts, the policy is re-read from the store
// and this replica's own file, and grant records the reload.

// feedActor is the actor of a reload this replica makes because another
// one reloaded.
const feedActor = "change-feed"

// Event types the feed dispatches, by what they change here.
const (
	evCertRevoked  = "cert.revoked"
	evPolicyReload = "policy.reload"
)

// feedRefreshTypes change the enrolled users, SSO identities (with their
// groups) or hosts that livepolicy merges into the policy in force.
func feedRefreshTypes() []string {
	return []string{"admin.user.add", "admin.user.remove", "admin.user.remove_key",
		grant.EventHostJoined, grant.EventHostRemoved, grant.EventHostCertRenewed,
		"login", "login.failed", "login.revoked"}
}

// feedTokenTypes may delete or replace a user's bearer token (an SSO
// refresh replaces the old one, a refused refresh or a taken-over name
// revokes it, a logout or removal ends it), which Logins and the console
// cache for a few seconds.
func feedTokenTypes() []string {
	return []string{"login", "login.failed", "login.revoked", "console.logout", "admin.user.remove"}
}

// replicaFeed is the daemon's side of the change feed.
type replicaFeed struct {
	// instance names this process in policy.reload records: the
	// replica's instance, drawn at New, so that a restarted replica is a
	// new instance.
	instance string
	feed     *audit.Feed
	log      *slog.Logger

	policy   *livepolicy.Holder
	admin    *grant.Admin
	bastion  func() *bastion.Server // nil until wired, and without a bastion
	mu       sync.Mutex
	logins   []*grant.Logins
	consoles []*grant.Console

	refreshTypes, tokenTypes map[string]bool

	healthy   atomic.Bool   // what the bastion was last told
	retry     chan int64    // the cause seq of a failed follow-up reload, latest only
	refresh   chan struct{} // a pending RefreshUsers, coalesced
	refreshes atomic.Int64  // RefreshUsers calls made, for tests and metrics
	reloads   atomic.Int64  // reloads made for another replica's
}

// initFeed starts the feed's cursor at the chain's head as it is now: what
// was committed before is in the state New reads after this. The feed
// names this process by its replica's instance.
func (d *Daemon) initFeed(ctx context.Context) error {
	instance := d.replica.instance
	head, err := d.store.HeadSeq(ctx)
	if err != nil {
		return fmt.Errorf("change feed: %w", err)
	}
	rf := newReplicaFeed(instance, d.log.With("component", "feed"), d.policy, func() *bastion.Server { return d.bastion })
	types := slices.Concat([]string{evCertRevoked, evPolicyReload}, feedRefreshTypes(), feedTokenTypes())
	slices.Sort(types)
	types = slices.Compact(types)
	rf.feed, err = d.store.NewFeed(audit.FeedConfig{Types: types, After: head, OnListen: rf.onListen, OnRead: rf.onRead})
	if err != nil {
		return fmt.Errorf("change feed: %w", err)
	}
	d.feed = rf
	return nil
}

// newReplicaFeed is the dispatching half of the feed, before its
// audit.Feed and Admin are set.
func newReplicaFeed(instance string, log *slog.Logger, pol *livepolicy.Holder, b func() *bastion.Server) *replicaFeed {
	return &replicaFeed{instance: instance, log: log, policy: pol, bastion: b, refresh: make(chan struct{}, 1), retry: make(chan int64, 1),
		refreshTypes: setOf(feedRefreshTypes()), tokenTypes: setOf(feedTokenTypes())}
}

// watchLogins and watchConsole add caches of tokens the feed keeps honest.
func (f *replicaFeed) watchLogins(l *grant.Logins) {
	if l == nil {
		return
	}
	f.mu.Lock()
	f.logins = append(f.logins, l)
	f.mu.Unlock()
}

func (f *replicaFeed) watchConsole(c *grant.Console) {
	f.mu.Lock()
	f.consoles = append(f.consoles, c)
	f.mu.Unlock()
}

// run tails the chain and refreshes the policy until ctx is done.
func (f *replicaFeed) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { f.refresher(ctx) })
	wg.Go(func() { f.watchHealth(ctx) })
	wg.Go(func() { f.retryReloads(ctx) })
	_ = f.feed.Run(ctx, f.dispatch) // returns ctx's error
	wg.Wait()
	f.setBastionHealthy(false)
}

// feedHealthCheck is how often the feed's health is judged again: a read
// that hangs fails no call, only the age of the last good one tells.
const feedHealthCheck = time.Second

// watchHealth tells the bastion, every feedHealthCheck, whether the feed
// is healthy by its progress (audit.FeedHealth.Healthy): only then may the
// bastion relax its own revocation lookups.
func (f *replicaFeed) watchHealth(ctx context.Context) {
	t := time.NewTicker(feedHealthCheck)
	defer t.Stop()
	for {
		f.setBastionHealthy(f.feed.Health().Healthy)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *replicaFeed) onListen(up bool, err error) {
	if up {
		f.log.Info("change feed: LISTEN connection up", "channel", audit.FeedChannel)
		return // healthy once a read after it succeeds (watchHealth)
	}
	f.log.Warn("change feed: LISTEN connection down; changes from other replicas arrive by polling until it is back",
		"poll", audit.DefaultFeedPoll, "err", err)
	f.setBastionHealthy(false)
}

// onRead makes a failed read unhealthy at once and logs the first failure
// in a row and each doubling of their count (a store that stays down is
// not one line a second), and the recovery.
func (f *replicaFeed) onRead(err error, failures int) {
	switch {
	case err != nil:
		f.setBastionHealthy(false)
		if failures&(failures-1) == 0 {
			f.log.Warn("change feed: read of the chain failed; the bastion looks certificates up often until it recovers",
				"failures_in_a_row", failures, "err", err)
		}
	case failures > 0:
		f.log.Info("change feed: reads recovered", "failures_in_a_row", failures)
	}
}

func (f *replicaFeed) setBastionHealthy(ok bool) {
	f.healthy.Store(ok)
	if b := f.bastion(); b != nil {
		b.SetFeedHealthy(ok)
	}
}

// dispatch applies one page of events; it only signals and re-reads, so a
// replay of a page (the feed delivers at least once) changes nothing.
func (f *replicaFeed) dispatch(ctx context.Context, page []audit.Event) error {
	refresh := false
	for _, e := range page {
		switch e.Type {
		case evCertRevoked:
			if b := f.bastion(); b != nil {
				b.CertificateRevoked(e.Serial)
			}
		case evPolicyReload:
			f.reloadFor(ctx, e)
		}
		if keyLogin(e) {
			continue // a key login changes no identity and deletes no token
		}
		refresh = refresh || f.refreshTypes[e.Type]
		if f.tokenTypes[e.Type] {
			f.forgetTokens(e.User)
		}
	}
	if refresh {
		select {
		case f.refresh <- struct{}{}:
		default: // one is pending already: it will see these too
		}
	}
	return nil
}

// reloadFor re-reads this replica's policy file because another replica
// reloaded its own (event e), unless e is this instance's or was itself
// caused by another reload.
func (f *replicaFeed) reloadFor(ctx context.Context, e audit.Event) {
	if e.Data[grant.ReloadDataInstance] == f.instance || e.Data[grant.ReloadDataCauseSeq] != "" {
		return
	}
	if !f.reloadOnce(ctx, e.Seq) {
		f.queueRetry(e.Seq)
	}
}

// reloadOnce makes one reload for the reload at seq; false if it failed.
func (f *replicaFeed) reloadOnce(ctx context.Context, seq int64) bool {
	f.reloads.Add(1)
	change, err := f.admin.ReloadPolicyCausedBy(ctx, grant.Caller{User: feedActor}, seq)
	if err != nil {
		f.log.Warn("change feed: reload for another replica's policy reload failed", "cause_seq", strconv.FormatInt(seq, 10), "err", err)
		return false
	}
	f.log.Info("change feed: policy reloaded after another replica's reload", "cause_seq", seq, "change", change.String())
	return true
}

// Retries of a failed follow-up reload (the file mid-edit, the store
// briefly down): reloadRetries at most, the first after reloadBackoff,
// doubling. Each try is recorded (as a failed reload while it fails), so
// they are few; after the last the operator reloads by hand.
const (
	reloadRetries = 6
	reloadBackoff = time.Second
)

// queueRetry asks retryReloads to try the reload for seq again; a newer
// failed one replaces an older one waiting, since one reload reads the
// file as it is then.
func (f *replicaFeed) queueRetry(seq int64) {
	for {
		select {
		case f.retry <- seq:
			return
		default:
		}
		select {
		case <-f.retry:
		default:
		}
	}
}

// retryReloads tries the reloads queueRetry was given until one succeeds
// or reloadRetries failed, with a doubling backoff.
func (f *replicaFeed) retryReloads(ctx context.Context) {
	for {
		var seq int64
		select {
		case <-ctx.Done():
			return
		case seq = <-f.retry:
		}
		wait := reloadBackoff
		for try := 1; ; try++ {
			select {
			case <-ctx.Done():
				return
			case newer := <-f.retry:
				seq, wait, try = newer, reloadBackoff, 0
				continue
			case <-time.After(wait):
			}
			if f.reloadOnce(ctx, seq) {
				break
			}
			if try >= reloadRetries {
				f.log.Error("change feed: reload for another replica's policy reload still fails; reload this replica by hand (SIGHUP)",
					"cause_seq", seq, "tries", try+1)
				break
			}
			wait *= 2
		}
	}
}

func (f *replicaFeed) forgetTokens(user string) {
	f.mu.Lock()
	logins, consoles := f.logins, f.consoles
	f.mu.Unlock()
	for _, l := range logins {
		l.ForgetUser(user)
	}
	for _, c := range consoles {
		c.ForgetTokens()
	}
}

// refresher merges the store's users, identities and hosts into the
// policy once per pending signal: a burst of enrolments through other
// replicas is one or a few refreshes, not one each.
func (f *replicaFeed) refresher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.refresh:
		}
		f.refreshes.Add(1)
		if err := f.policy.RefreshUsers(ctx); err != nil && ctx.Err() == nil {
			f.log.Warn("change feed: refresh enrolled users", "err", err)
		}
	}
}

// keyLogin reports whether e is a key login's outcome (or any login
// event that is not an SSO one's): the bulk of login events, including a
// scanner's refusals, which must not cost every replica a refresh each.
func keyLogin(e audit.Event) bool {
	if e.Type != "login" && e.Type != "login.failed" {
		return false
	}
	m := e.Data["method"]
	return m == "" || m == grant.MethodKey
}

func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[v] = true
	}
	return m
}

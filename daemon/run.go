package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/apiserver"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/provision"
	"github.com/jitssh/jitssh/recstore"
	"github.com/jitssh/jitssh/sso"
	"github.com/jitssh/jitssh/tlspin"
)

// Config is how jitd serve is run.
type Config struct {
	Dir string
	// APIAddr is where the HTTPS API listens, e.g. 127.0.0.1:7443.
	APIAddr string
	// BastionAddr is where the recording bastion listens; empty means no
	// bastion in this process.
	BastionAddr string
	// PublicAddrs are the NAME:PORT addresses engineers dial the bastion
	// by: the host of each is a principal of its host certificate and the
	// first is what /v1/ca advertises. Required when BastionAddr listens
	// on every address (0.0.0.0, ::).
	PublicAddrs []string
	// BastionCertLifetime is the lifetime of the bastion's host
	// certificate, renewed in the running bastion after two thirds of it;
	// zero means DefaultBastionCertLifetime.
	BastionCertLifetime time.Duration
	// EgressAddresses are the bastion's source addresses towards targets, as
	// CIDRs, written into target certificates as source-address. Empty
	// means, per target, the local address of this machine's route to it.
	EgressAddresses []string
	// Webhooks receive lifecycle notifications.
	Webhooks []WebhookConfig
	// MetricsAddr, if set, serves Prometheus metrics over plain HTTP at
	// /metrics there (keep it on a private address).
	MetricsAddr string
	Logger      *slog.Logger
	// Clock is the daemon's notion of now; nil means time.Now.
	Clock func() time.Time
	// Ready, if set, is called by Serve once it serves.
	Ready func(Addrs)
	// ShutdownTimeout bounds how long Close waits for open sessions and
	// requests to finish before it cuts them; zero means 10s.
	ShutdownTimeout time.Duration
	// Limits bound connections, timeouts and rate limits (limits.go).
	Limits Limits
	// TLSCert and TLSKey, both or neither, are PEM files of a certificate
	// (a chain, leaf first) and its key that the API and the web console
	// serve instead of the self-signed one jitd init made; jit pins
	// whichever is served.
	TLSCert, TLSKey string
	// SSOConfig is the --sso-config file naming OpenID providers
	// (docs/sso.md); empty means no SSO login.
	SSOConfig string
	// ConsoleURL is the web console's origin as browsers reach it,
	// https://NAME:PORT (--console-url): the SSO redirect URI is made from
	// it, never from a request's Host header. Empty means the console
	// offers no SSO login.
	ConsoleURL string
	// EphemeralUIDMin and EphemeralUIDMax are the UID range reserved for
	// ephemeral accounts on targets (inclusive); zero means
	// provision.DefaultUIDMin and DefaultUIDMax.
	EphemeralUIDMin, EphemeralUIDMax int
	// Store is the audit store's postgres:// URL (--store); empty means
	// the embedded SQLite file in Dir.
	Store string
	// Recordings is where finished recordings live: the zero value is the
	// data directory's recordings directory; an S3 location makes that
	// directory the spool they are uploaded from (docs/scale-out.md).
	Recordings recstore.Location
	// S3 reaches the object store of an S3 Recordings location.
	S3 recstore.S3Config
	// ReplicaID names this replica among those on one store (--replica-id);
	// empty means the data directory's replica-id file, made with 8 random
	// bytes in hex on first start. Two running processes never share one
	// (replica.go).
	ReplicaID string
	// AdvertiseURL is https://HOST:PORT, where the other replicas reach
	// this one's API (--advertise-url); empty means the API's address when
	// it is a specific IP, else this host's name with the API's port.
	AdvertiseURL string
	// ProxyProtocolFrom are the CIDRs of the TCP load balancers in front
	// of the API and the bastion that send a PROXY protocol header
	// (--proxy-protocol-from): their connections must start with one and
	// take the client's address from it; nobody else's is parsed.
	ProxyProtocolFrom []string

	// beat and checkpointEvery are the heartbeat and checkpoint periods;
	// zero means defaultBeat and defaultCheckpoint (tests shorten them).
	beat, checkpointEvery time.Duration
}

// Addrs are the addresses the daemon listens on.
type Addrs struct {
	API, Bastion, Metrics string
	TLSFingerprint        string
}

// defaultShutdownTimeout is how long Close waits for open connections and
// sessions before it cuts them, unless Config says otherwise.
const defaultShutdownTimeout = 10 * time.Second

// Daemon is one jitd: its keys, audit store and live policy, the services
// wired on them, and the listeners. New builds it, Serve serves it, Reload
// re-reads its policy and Close shuts it down. Signals are the caller's.
type Daemon struct {
	cfg           Config
	log           *slog.Logger
	store         *audit.Store
	policy        *livepolicy.Holder
	checkpointKey ssh.Signer
	notifier      *webhookNotifier
	grants        *grant.Service
	admin         *grant.Admin
	bastion       *bastion.Server // nil without Config.BastionAddr
	bastionID     *bastionIdentity
	accounts      *provision.Accounts // ephemeral accounts (removals run without a bastion too)
	api           *http.Server
	apiLn         net.Listener
	metrics       *http.Server // nil without Config.MetricsAddr
	metricsLn     net.Listener
	sso           *sso.RP // nil without Config.SSOConfig
	recs          *recstore.Store
	addrs         Addrs
	replica       *replica
	proxy         *proxyGate // nil without Config.ProxyProtocolFrom

	// pendingIndex are the search index catch-ups left by an earlier run,
	// listed before the bastion accepts a session (indexcatchup.go).
	pendingIndex []audit.PendingIndex

	// feed applies other replicas' changes to what this one holds (feed.go).
	feed *replicaFeed

	serving   atomic.Bool
	wg        sync.WaitGroup // the goroutines serving listeners
	closeOnce sync.Once
	closeErr  error
}

// New loads the data directory (CA keys, TLS certificate, checkpoint key,
// audit store, policy), wires grant, the API, the bastion and webhooks, and
// opens the listeners, so Addrs are known when it returns. It refuses to
// start on missing keys (saying to run jitd init), on key files others may
// read and on a bad policy file (naming file and line). The bastion, when
// configured, accepts connections from here on; the API and metrics from
// Serve on.
func New(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Limits, err = cfg.Limits.withDefaults(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger}
	if d.proxy, err = newProxyGate(cfg.ProxyProtocolFrom, cfg.Logger); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.abort()
		}
	}()
	// The SSO file is read first: a mistake in it names its line before
	// anything listens. No provider is asked yet (sso.New discovers on
	// first use), so one that is down does not keep jitd from starting.
	var ssoConfig *sso.Config
	var ssoOpts sso.Options
	if cfg.SSOConfig != "" {
		var err error
		if ssoConfig, err = sso.LoadConfig(cfg.SSOConfig); err != nil {
			return nil, err
		}
		if ssoOpts, err = consoleSSOOptions(cfg); err != nil {
			return nil, err
		}
	}
	keys, tlsCert, err := d.load(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.initFeed(ctx); err != nil {
		return nil, err
	}
	if ssoConfig != nil {
		// The flows in progress live in the store, shared by replicas.
		ssoOpts.Store = d.store
		if d.sso, err = sso.New(ssoConfig, ssoOpts); err != nil {
			return nil, err
		}
	}
	if err := d.endCrashedSessions(ctx); err != nil {
		return nil, err
	}
	if err := d.wire(ctx, keys, tlsCert); err != nil {
		return nil, err
	}
	if err := d.registerReplica(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// load reads the keys and opens the store and the policy.
func (d *Daemon) load(ctx context.Context) (*ca.Keys, tls.Certificate, error) {
	l := Layout{Dir: d.cfg.Dir, Store: d.cfg.Store}
	if err := l.CheckModes(); err != nil {
		return nil, tls.Certificate{}, err
	}
	keys, err := ca.LoadKeys(l.CADir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, tls.Certificate{}, fmt.Errorf("load CA keys (run jitd init first): %w", err)
		}
		return nil, tls.Certificate{}, fmt.Errorf("load CA keys: %w", err)
	}
	tlsCert, fingerprint, err := loadTLS(l.TLSDir())
	if d.cfg.TLSCert != "" || d.cfg.TLSKey != "" {
		tlsCert, fingerprint, err = loadTLSFiles(d.cfg.TLSCert, d.cfg.TLSKey)
	}
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	d.addrs.TLSFingerprint = fingerprint
	// The checkpoint key is loaded once and never made here: a daemon that
	// silently signed with a new key would vouch for a rewritten chain.
	if d.checkpointKey, err = ca.LoadSigner(l.CheckpointKey()); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, tls.Certificate{}, fmt.Errorf("checkpoint key %s is missing (run jitd init, or jitd serve --init): %w", l.CheckpointKey(), err)
		}
		return nil, tls.Certificate{}, fmt.Errorf("checkpoint key: %w", err)
	}
	if d.store, err = l.OpenStore(ctx); err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("open audit store: %w", err)
	}
	if d.policy, err = livepolicy.Load(ctx, l.PolicyFile(), d.store); err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("load policy: %w", err)
	}
	if d.replica, err = d.newReplica(); err != nil {
		return nil, tls.Certificate{}, err
	}
	return keys, tlsCert, nil
}

// wire builds the services on what load opened and listens.
func (d *Daemon) wire(ctx context.Context, keys *ca.Keys, tlsCert tls.Certificate) error {
	var err error
	if d.notifier, err = newWebhookNotifier(d.cfg.Webhooks, d.log, d.cfg.Clock); err != nil {
		return err
	}
	d.grants, err = grant.New(grant.Config{Policy: d.policy.Current, Store: d.store, Keys: keys, Clock: d.cfg.Clock, Notifier: d.notifier})
	if err != nil {
		return err
	}
	if d.admin, err = grant.NewAdmin(grant.AdminConfig{Store: d.store, Policy: d.policy.Current, Reloader: modeCheckedReloader{d.policy, Layout{Dir: d.cfg.Dir}, d.replica.policyLoaded}, Clock: d.cfg.Clock,
		Instance: d.replica.instance}); err != nil {
		return err
	}
	d.feed.admin = d.admin
	if err := d.openRecordings(); err != nil {
		return err
	}
	metrics := metricsHandler{store: d.store, webhooks: d.notifier.n.Stats, clock: d.cfg.Clock, feed: d.feed, proxy: d.proxy}
	if d.recs.Remote() {
		metrics.uploads = d.recs.Backlog
	}
	// The provisioner runs without a bastion too: accounts queued for
	// removal by an earlier run with one must still go.
	backend := &bastionBackend{grants: d.grants, store: d.store, clock: d.cfg.Clock, recs: d.recs, openRecording: d.openRecording, replica: d.replica.id}
	if d.accounts, err = d.newAccounts(keys, backend); err != nil {
		return err
	}
	backend.accounts = d.accounts
	if err := d.claimReplica(ctx); err != nil {
		return err
	}
	if d.cfg.BastionAddr != "" {
		if d.pendingIndex, err = d.ownIndexCatchUps(ctx); err != nil {
			return fmt.Errorf("list search index catch-ups: %w", err)
		}
		addr, id, err := startBastion(ctx, d.cfg, Layout{Dir: d.cfg.Dir}, keys, backend, d.store, d.policy, d.proxy, &d.wg)
		if err != nil {
			return err
		}
		srv := id.srv
		d.bastion, d.bastionID, d.addrs.Bastion = srv, id, addr
		metrics.liveSessions = func() int { return len(srv.LiveSessions()) }
		metrics.refused = srv.RefusedConnections
	}
	d.recs.Start()
	if d.cfg.MetricsAddr != "" {
		if d.metricsLn, err = net.Listen("tcp", d.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", d.cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		d.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		d.addrs.Metrics = d.metricsLn.Addr().String()
	}
	return d.wireAPI(keys, tlsCert)
}

func (d *Daemon) wireAPI(keys *ca.Keys, tlsCert tls.Certificate) error {
	lim := d.cfg.Limits
	throttle, err := grant.NewThrottle(grant.ThrottleConfig{Store: d.store, Login: lim.Login, Requests: lim.Requests, Clock: d.cfg.Clock})
	if err != nil {
		return err
	}
	handler, err := apiserver.New(apiserver.Config{
		SSO:               d.sso,
		Throttle:          throttle,
		Grants:            d.grants,
		Store:             d.store,
		Policy:            d.policy,
		CAKeys:            keys.Public(),
		TLSFingerprint:    d.addrs.TLSFingerprint,
		BastionAddr:       advertisedBastion(d.addrs.Bastion, d.cfg.PublicAddrs),
		ReservedHostNames: reservedHostNames(d.cfg.PublicAddrs),
		CheckpointKey:     d.checkpointKey.PublicKey(),
		Recordings:        d.recordingsFS(),
		Replica: apiserver.ReplicaConfig{ID: d.replica.id, TTL: d.replica.ttl(), LeaseName: leaseHousekeeping,
			ProxyTLS: apiserver.PinnedTLS(tlsCert.Certificate[0])},
		Clock:    d.cfg.Clock,
		Logger:   d.log.With("component", "api"),
		Instance: d.replica.instance,
	})
	if err != nil {
		return err
	}
	d.feed.watchLogins(handler.Logins())
	viewKey, err := sharedViewKey(tlsCert)
	if err != nil {
		return err
	}
	withConsole, err := d.withConsole(handler, throttle, viewKey)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", d.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen for API on %s: %w", d.cfg.APIAddr, err)
	}
	// The client's address comes first: the cap per address counts it.
	if ln, err = d.proxy.wrap(ln, "api"); err != nil {
		return errors.Join(err, ln.Close())
	}
	d.apiLn = newLimitListener(ln, lim.APIMaxConns)
	d.api = &http.Server{
		Handler:   withConsole,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12},
		ErrorLog:  apiErrorLog(d.log.Handler()),
	}
	lim.apiTimeouts(d.api)
	d.addrs.API = d.apiLn.Addr().String()
	return nil
}

// Addrs returns the addresses the daemon listens on.
func (d *Daemon) Addrs() Addrs { return d.addrs }

// Serve serves the API and metrics and runs housekeeping (expiring
// requests, picking up users enrolled by jitd user add, signing the chain
// head every minute) until ctx is done, when it returns nil, or the API
// listener fails, when it returns that error, or another process takes
// this replica's ID over (it stalled past the heartbeat's freshness
// window), when it returns an error wrapping audit.ErrTwin. It may be
// called once; the listeners stay open until Close.
func (d *Daemon) Serve(ctx context.Context) error {
	if !d.serving.CompareAndSwap(false, true) {
		return errors.New("daemon: Serve called twice")
	}
	serveErr := make(chan error, 1)
	d.wg.Go(func() {
		if err := d.api.ServeTLS(d.apiLn, "", ""); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("serve API: %w", err)
		}
	})
	if d.metrics != nil {
		d.wg.Go(func() {
			if err := d.metrics.Serve(d.metricsLn); !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("metrics server stopped", "err", err)
			}
		})
	}
	hkCtx, stopHousekeeping := context.WithCancel(ctx)
	var hk sync.WaitGroup
	hk.Go(func() { d.housekeeping(hkCtx) })
	hk.Go(func() { d.feed.run(hkCtx) })
	if d.bastion != nil && len(d.pendingIndex) > 0 {
		hk.Go(func() { d.finishIndexing(hkCtx) })
	}
	if d.bastionID != nil {
		hk.Go(func() { d.bastionID.run(hkCtx) })
	}
	hk.Go(func() { d.replica.run(hkCtx) })
	if d.accounts != nil {
		hk.Go(func() { d.sweepAccounts(hkCtx) })
	}
	defer func() {
		stopHousekeeping()
		hk.Wait()
	}()

	a := d.addrs
	d.log.Info("jitd serving", "api", a.API, "bastion", a.Bastion, "tls_fingerprint", a.TLSFingerprint, "data", d.cfg.Dir, "metrics", a.Metrics)
	if d.cfg.Ready != nil {
		d.cfg.Ready(a)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		return err
	case err := <-d.replica.displaced:
		d.log.Error("another process took this replica's ID over; stopping", "replica", d.replica.id, "err", err)
		return fmt.Errorf("replica %s displaced: %w", d.replica.id, err)
	}
}

// Close shuts the daemon down gracefully: it stops the bastion, the API and
// metrics, waiting up to Config.ShutdownTimeout for open sessions and
// requests and then cutting them (a cut session still records its end,
// since the store is closed last); then it drains webhook deliveries, signs
// a final checkpoint and closes the store. Call it once Serve has returned,
// or instead of Serve; later calls return the first call's result. Its
// error is that of the final checkpoint or of closing the store; slow
// shutdowns are only logged.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		d.log.Info("jitd shutting down")
		d.stopServers()
		d.closeRecordings()
		if err := d.replica.retire(context.Background(), func() error {
			_, err := d.store.SignCheckpoint(context.Background(), d.checkpointKey, d.cfg.Clock())
			return err
		}); err != nil {
			d.log.Warn("final checkpoint", "err", err)
			d.closeErr = fmt.Errorf("final checkpoint: %w", err)
		}
		d.notifier.Close()
		if err := d.store.Close(); err != nil {
			d.closeErr = errors.Join(d.closeErr, fmt.Errorf("close audit store: %w", err))
		}
	})
	return d.closeErr
}

// stopServers shuts down whichever servers and listeners exist and waits
// for their goroutines.
func (d *Daemon) stopServers() {
	timeout := d.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = defaultShutdownTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if d.bastion != nil {
		if err := d.bastion.Shutdown(ctx); err != nil {
			// Sessions still open are cut now, so that each records its end
			// while the store is still open; left running they would outlive
			// the final checkpoint and lose their session.end.
			d.log.Warn("bastion shutdown: cutting the sessions still open", "err", err)
			if err := d.bastion.Close(); err != nil {
				d.log.Warn("bastion close", "err", err)
			}
		}
	}
	for _, s := range []struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}{{"API", d.api, d.apiLn}, {"metrics", d.metrics, d.metricsLn}} {
		if s.srv != nil {
			if err := s.srv.Shutdown(ctx); err != nil {
				d.log.Warn(s.name+" shutdown: closing the connections still open", "err", err)
				_ = s.srv.Close()
			}
		}
		if s.ln != nil {
			// Shutdown closes only listeners that were served.
			_ = s.ln.Close()
		}
	}
	d.wg.Wait()
}

// abort undoes a New that failed part-way, without a checkpoint: nothing
// was served.
func (d *Daemon) abort() {
	d.stopServers()
	d.closeRecordings()
	if d.notifier != nil {
		d.notifier.Close()
	}
	if d.store != nil {
		_ = d.store.Close()
	}
}

func loadTLS(dir string) (tls.Certificate, string, error) {
	keyPath := filepath.Join(dir, "tls.key")
	fi, err := os.Stat(keyPath)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("TLS key (run jitd init first): %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return tls.Certificate{}, "", fmt.Errorf("%s: permissions %04o are too open; want 0600", keyPath, fi.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), keyPath)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load TLS certificate: %w", err)
	}
	return cert, tlspin.Fingerprint(cert.Certificate[0]), nil
}

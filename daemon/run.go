package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
)

// Config is how jitd serve is run.
type Config struct {
	Dir string
	// APIAddr is where the HTTPS API listens, e.g. 127.0.0.1:7443.
	APIAddr string
	// BastionAddr is where the recording bastion listens; empty means no
	// bastion in this process.
	BastionAddr string
	// EgressAddresses are the bastion's source addresses towards targets, as
	// CIDRs, written into target certificates as source-address.
	EgressAddresses []string
	// Webhooks receive lifecycle notifications.
	Webhooks []WebhookConfig
	// MetricsAddr, if set, serves Prometheus metrics over plain HTTP at
	// /metrics there (keep it on a private address).
	MetricsAddr string
	Logger      *slog.Logger
	// Clock is the daemon's notion of now; nil means time.Now.
	Clock func() time.Time
	// Ready, if set, is called once the listeners are up.
	Ready func(Addrs)
}

// Addrs are the addresses the daemon listens on.
type Addrs struct {
	API, Bastion, Metrics string
	TLSFingerprint        string
}

// Run serves until ctx is cancelled, then shuts down gracefully. SIGHUP
// reloads the policy; a bad policy on reload is logged and the last good one
// stays in force.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger
	l := Layout{Dir: cfg.Dir}
	keys, err := ca.LoadKeys(l.CADir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("load CA keys (run jitd init first): %w", err)
		}
		return fmt.Errorf("load CA keys: %w", err)
	}
	tlsCert, fingerprint, err := loadTLS(l.TLSDir())
	if err != nil {
		return err
	}
	store, err := audit.Open(l.Database())
	if err != nil {
		return fmt.Errorf("open audit store: %w", err)
	}
	defer store.Close()
	ps, err := LoadPolicy(ctx, l.PolicyFile(), store)
	if err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	notifier, err := newWebhookNotifier(cfg.Webhooks, log, cfg.Clock)
	if err != nil {
		return err
	}
	defer notifier.Close()
	grants, err := grant.New(grant.Config{Policy: ps.Current, Store: store, Keys: keys, Clock: cfg.Clock, Notifier: notifier})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var addrs Addrs
	addrs.TLSFingerprint = fingerprint
	var bastionStop func(context.Context) error
	metrics := metricsHandler{store: store, webhooks: notifier.n.Stats}
	if cfg.BastionAddr != "" {
		addr, srv, err := startBastion(ctx, cfg, l, keys, grants, store, ps, &wg)
		if err != nil {
			return err
		}
		addrs.Bastion, bastionStop = addr, srv.Shutdown
		metrics.liveSessions = func() int { return len(srv.LiveSessions()) }
	}
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		addrs.Metrics = mln.Addr().String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := metricsSrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
	}

	checkpointKey, err := ca.LoadOrCreateHostKey(l.CheckpointKey(), ca.Ed25519)
	if err != nil {
		return fmt.Errorf("checkpoint key: %w", err)
	}
	apiSrv, err := api.NewServer(api.Config{
		Grants:         grants,
		Store:          store,
		Policy:         ps,
		Keys:           keys,
		TLSFingerprint: fingerprint,
		BastionAddr:    addrs.Bastion,
		CheckpointKey:  checkpointKey.PublicKey(),
		Recordings:     audit.DirRecordings(l.Recordings()),
		Clock:          cfg.Clock,
		Logger:         log.With("component", "api"),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen for API on %s: %w", cfg.APIAddr, err)
	}
	httpSrv := &http.Server{
		Handler:           apiSrv,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	addrs.API = ln.Addr().String()
	serveErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := httpSrv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()

	wg.Add(1)
	go func() {
		defer wg.Done()
		housekeeping(ctx, log, grants, ps, store, checkpointKey, cfg.Clock)
	}()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	log.Info("jitd serving", "api", addrs.API, "bastion", addrs.Bastion, "tls_fingerprint", fingerprint, "data", cfg.Dir, "metrics", addrs.Metrics)
	if cfg.Ready != nil {
		cfg.Ready(addrs)
	}
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-serveErr:
			runErr = fmt.Errorf("serve API: %w", err)
			break loop
		case <-hup:
			if err := ps.Reload(ctx); err != nil {
				log.Error("policy reload failed; keeping the last good policy", "err", err)
				_ = appendEvent(ctx, store, audit.Event{Time: cfg.Clock().UTC(), Type: "policy.reload", Code: "failed", Actor: "SIGHUP", Message: err.Error()})
			} else {
				log.Info("policy reloaded")
				_ = appendEvent(ctx, store, audit.Event{Time: cfg.Clock().UTC(), Type: "policy.reload", Code: "ok", Actor: "SIGHUP"})
			}
		}
	}
	log.Info("jitd shutting down")
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	if bastionStop != nil {
		if err := bastionStop(shutdownCtx); err != nil {
			log.Warn("bastion shutdown", "err", err)
		}
	}
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("API shutdown", "err", err)
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(shutdownCtx); err != nil {
			log.Warn("metrics shutdown", "err", err)
		}
	}
	cancel()
	wg.Wait()
	if _, err := store.SignCheckpoint(context.WithoutCancel(ctx), checkpointKey, cfg.Clock()); err != nil {
		log.Warn("final checkpoint", "err", err)
	}
	return runErr
}

// housekeeping expires overdue requests, picks up users enrolled by another
// process (jitd user add) and signs the chain head periodically.
func housekeeping(ctx context.Context, log *slog.Logger, grants *grant.Service, ps *PolicyState, store *audit.Store, checkpointKey ssh.Signer, clock func() time.Time) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastCheckpoint := clock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n, err := grants.ExpireDue(ctx); err != nil {
			log.Warn("expire requests", "err", err)
		} else if n > 0 {
			log.Info("requests expired", "count", n)
		}
		if err := ps.RefreshUsers(ctx); err != nil {
			log.Warn("refresh enrolled users", "err", err)
		}
		if clock().Sub(lastCheckpoint) >= time.Minute {
			if _, err := store.SignCheckpoint(ctx, checkpointKey, clock()); err != nil {
				log.Warn("checkpoint", "err", err)
			}
			lastCheckpoint = clock()
		}
	}
}

func appendEvent(ctx context.Context, store *audit.Store, e audit.Event) error {
	return store.Do(ctx, func(tx *audit.Tx) error {
		_, err := tx.Append(e)
		return err
	})
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
	return cert, ca.TLSFingerprint(cert.Certificate[0]), nil
}

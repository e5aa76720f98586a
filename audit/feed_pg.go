package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FeedChannel is the PostgreSQL notification channel that migration 11's
// statement-level trigger on events notifies (with an empty payload): one
// notification per committing transaction that appended, delivered at
// commit, whichever process wrote.
const FeedChannel = "jitssh_events"

// Bounds of the LISTEN connection's life.
const (
	// listenCheck is how long the LISTEN connection waits for a
	// notification before it proves itself alive with a round trip.
	listenCheck = 30 * time.Second
	// listenPing bounds that round trip and the connect.
	listenPing = 10 * time.Second
	// listenBackoffMax bounds the wait between reconnects.
	listenBackoffMax = 30 * time.Second
)

// listen holds one dedicated connection with LISTEN on FeedChannel until
// ctx is done, waking the feed for each notification and each time the
// connection (re)starts (what was notified while it was down is read from
// the cursor, so nothing is lost with it). A failed connection is retried
// with a doubling backoff from half a second to half a minute.
func (f *Feed) listen(ctx context.Context, wake chan<- struct{}) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := f.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			f.listening.Store(false)
			return
		}
		if f.listening.Swap(false) {
			backoff = 500 * time.Millisecond // it was up: start over
		}
		if f.cfg.OnListen != nil {
			f.cfg.OnListen(false, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

func (f *Feed) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	if f.store.pgcfg == nil {
		return errors.New("no PostgreSQL configuration")
	}
	cfg := f.store.pgcfg.Copy()
	// The same keepalives and timeouts as the store's readers: a LISTEN
	// connection that died silently is noticed by TCP, not only by the
	// next ping; and libpq's keepalive names in the URL are taken out
	// here, as for the pools, rather than sent to the server.
	if err := harden(cfg, false); err != nil {
		return fmt.Errorf("connection settings: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "jitd audit feed"
	cctx, cancel := context.WithTimeout(ctx, listenPing)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+FeedChannel); err != nil {
		return fmt.Errorf("listen %s: %w", FeedChannel, err)
	}
	f.listening.Store(true)
	if f.cfg.OnListen != nil {
		f.cfg.OnListen(true, nil)
	}
	poke(wake)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenCheck)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			poke(wake)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() == nil:
			return fmt.Errorf("wait for notification: %w", err)
		}
		// Quiet for listenCheck: a round trip tells a quiet connection
		// from a dead one (a timeout leaves pgx's connection usable).
		pctx, cancel := context.WithTimeout(ctx, listenPing)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
}

func poke(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

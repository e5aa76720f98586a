package audit

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Timeouts of the PostgreSQL store's connections (docs/scale-out.md,
// "Timeouts"). Several replicas write one chain under one advisory lock, so
// a replica that stops talking while it holds the lock (partitioned, frozen,
// its process stopped) would stall every other replica until TCP noticed,
// which takes the kernel's defaults: hours for keepalives, about 15 minutes
// of retransmissions. These bound it: the server ends a writer's session
// that sits idle inside a transaction (and so frees the chain lock it
// held), a writer waiting for the lock gives up with a clear error (its
// callers get audit_unavailable and retry), a write statement is cut after
// statement_timeout, and keepalives on both ends find a peer that is gone.
//
// Each is a libpq parameter of the URL too, and the URL's value wins: the
// server settings as URL parameters (?lock_timeout=2s) or in options
// (?options=-c%20lock_timeout%3D2s); the keepalive ones under libpq's names.
const (
	// pgLockTimeout bounds the wait for the chain lock (and any other lock
	// a write waits for). A healthy holder keeps it for a few
	// milliseconds, one batch; a stalled one is cut by the server after
	// pgIdleInTransaction, which is shorter, so that the writers waiting
	// behind it get the lock then instead of an error.
	pgLockTimeout = "20s"
	// pgStatementTimeout bounds one write statement; the store's writes
	// touch a few rows each.
	pgStatementTimeout = "30s"
	// pgIdleInTransaction is how long the server lets a writer's
	// transaction sit without a statement before it ends the session and
	// frees its locks. The writer never waits inside a transaction for
	// anything but its own callbacks, which must not block.
	pgIdleInTransaction = "15s"
	// pgConnectTimeout bounds connecting (libpq's connect_timeout).
	pgConnectTimeout = 10 * time.Second
)

// keepalive is the TCP keepalive and user timeout of both ends of a
// connection: libpq's keepalives, keepalives_idle, keepalives_interval,
// keepalives_count and tcp_user_timeout, which the client applies to its
// socket and the store also asks the server to apply to its own
// (tcp_keepalives_idle, ..., tcp_user_timeout), so that whichever end
// survives a partition notices it.
type keepalive struct {
	off         bool          // keepalives=0
	idle        time.Duration // keepalives_idle, seconds
	interval    time.Duration // keepalives_interval, seconds
	count       int           // keepalives_count
	userTimeout time.Duration // tcp_user_timeout, milliseconds: unacknowledged data
}

// defaultKeepalive notices a silent peer within about 25 s of idleness
// (10 s, then 3 probes 5 s apart) and one that stops acknowledging what
// was sent within 30 s.
func defaultKeepalive() keepalive {
	return keepalive{idle: 10 * time.Second, interval: 5 * time.Second, count: 3, userTimeout: 30 * time.Second}
}

// takeKeepalive removes libpq's keepalive parameters from params (pgx
// does not know them and would send them to the server as settings, which
// it refuses) and returns them over the defaults.
func takeKeepalive(params map[string]string) (keepalive, error) {
	k := defaultKeepalive()
	for _, name := range [...]string{"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"} {
		v, ok := params[name]
		if !ok {
			continue
		}
		delete(params, name)
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > math.MaxInt32 { // libpq's and the server's are C ints
			return keepalive{}, fmt.Errorf("parameter %s=%q: want a whole number from 0 to %d", name, v, math.MaxInt32)
		}
		switch name {
		case "keepalives":
			k.off = n == 0
		case "keepalives_idle":
			k.idle = time.Duration(n) * time.Second
		case "keepalives_interval":
			k.interval = time.Duration(n) * time.Second
		case "keepalives_count":
			k.count = n
		case "tcp_user_timeout":
			k.userTimeout = time.Duration(n) * time.Millisecond
		}
	}
	return k, nil
}

// serverSettings are the server's own keepalive settings for k.
func (k keepalive) serverSettings() [][2]string {
	if k.off {
		return nil
	}
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	return [][2]string{
		{"tcp_keepalives_idle", secs(k.idle)},
		{"tcp_keepalives_interval", secs(k.interval)},
		{"tcp_keepalives_count", strconv.Itoa(k.count)},
		{"tcp_user_timeout", strconv.Itoa(int(k.userTimeout / time.Millisecond))},
	}
}

// dialer is the client's side of k.
func (k keepalive) dialer(connectTimeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: connectTimeout}
	if k.off {
		d.KeepAlive = -1
		return d
	}
	d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: k.idle, Interval: k.interval, Count: k.count}
	d.Control = userTimeoutControl(k.userTimeout)
	return d
}

// setDefault sets a server setting unless the URL already did, as a
// parameter or in options.
func setDefault(params map[string]string, name, value string) {
	if _, ok := params[name]; ok || slices.Contains(optionSettings(params["options"]), name) {
		return
	}
	params[name] = value
}

// optionSettings are the names of the settings that a connection's
// options (the server's command line, libpq's "options") set, as the
// server reads them: words split at white space not escaped by a
// backslash, each setting "-c name=value", "-cname=value" or
// "--name=value", its name in lower case with "-" for "_". A whole name,
// so that deadlock_timeout is not taken for lock_timeout.
func optionSettings(options string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(options); i++ {
		switch c := options[i]; {
		case c == '\\' && i+1 < len(options):
			i++
			w.WriteByte(options[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	var names []string
	for i := 0; i < len(words); i++ {
		var setting string
		switch word := words[i]; {
		case word == "-c" && i+1 < len(words):
			i++
			setting = words[i]
		case strings.HasPrefix(word, "--"):
			setting = word[2:]
		case strings.HasPrefix(word, "-c"):
			setting = word[2:]
		default:
			continue
		}
		if name, _, ok := strings.Cut(setting, "="); ok {
			names = append(names, strings.ReplaceAll(strings.ToLower(name), "-", "_"))
		}
	}
	return names
}

// harden applies the store's connection defaults to cfg (a copy per pool):
// keepalives and the connect timeout on every connection, and for the
// write connection the lock, statement and idle-in-transaction timeouts.
func harden(cfg *pgx.ConnConfig, write bool) error {
	k, err := takeKeepalive(cfg.RuntimeParams)
	if err != nil {
		return err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	cfg.DialFunc = k.dialer(cfg.ConnectTimeout).DialContext
	for _, s := range k.serverSettings() {
		setDefault(cfg.RuntimeParams, s[0], s[1])
	}
	if write {
		setDefault(cfg.RuntimeParams, "lock_timeout", pgLockTimeout)
		setDefault(cfg.RuntimeParams, "statement_timeout", pgStatementTimeout)
		setDefault(cfg.RuntimeParams, "idle_in_transaction_session_timeout", pgIdleInTransaction)
	}
	return nil
}

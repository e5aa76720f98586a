package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPGSessionSettings checks the timeouts and keepalives each connection
// of a PostgreSQL store runs with, by default and with the URL's own.
func TestPGSessionSettings(t *testing.T) {
	u := pgURL(t)
	tests := []struct {
		name   string
		params string
		write  map[string]string
		read   map[string]string
	}{
		{name: "defaults", write: map[string]string{"lock_timeout": "20s", "statement_timeout": "30s",
			"idle_in_transaction_session_timeout": "15s", "tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
			"tcp_keepalives_count": "3", "tcp_user_timeout": "30000"},
			read: map[string]string{"lock_timeout": "0", "statement_timeout": "0", "idle_in_transaction_session_timeout": "0",
				"tcp_keepalives_idle": "10", "tcp_user_timeout": "30000"}},
		{name: "the URL wins", params: "&lock_timeout=2s&keepalives_idle=7&tcp_user_timeout=5000&options=-c%20statement_timeout%3D3s",
			write: map[string]string{"lock_timeout": "2s", "statement_timeout": "3s", "tcp_keepalives_idle": "7", "tcp_user_timeout": "5000"},
			read:  map[string]string{"lock_timeout": "2s", "tcp_keepalives_idle": "7"}},
		{name: "keepalives off", params: "&keepalives=0",
			write: map[string]string{"tcp_user_timeout": "0", "lock_timeout": "20s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenURL(context.Background(), u+tc.params, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for pool, want := range map[string]map[string]string{"write": tc.write, "read": tc.read} {
				db := s.write
				if pool == "read" {
					db = s.read
				}
				for name, v := range want {
					var got string
					if err := db.QueryRow("SHOW " + name).Scan(&got); err != nil {
						t.Fatal(err)
					}
					if got != v {
						t.Errorf("%s connection: %s = %q, want %q", pool, name, got, v)
					}
				}
			}
		})
	}
	for _, bad := range []string{"keepalives_idle=x", "keepalives_count=-1"} {
		if _, err := OpenURL(context.Background(), u+"&"+bad, Options{}); err == nil || !strings.Contains(err.Error(), strings.Split(bad, "=")[0]) {
			t.Errorf("OpenURL with %s: error = %v, want one naming the parameter", bad, err)
		}
	}
}

// holdChainLock takes the chain lock on a connection of its own, made from
// u as a store's write connection would be, and keeps the transaction open
// without a word more: a replica partitioned from the database (or frozen)
// while it writes.
func holdChainLock(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := harden(cfg, true); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", chainLockKey); err != nil {
		t.Fatal(err)
	}
	return conn
}

// appendWithin appends on s and returns its error, failing t if it takes
// longer than d.
func appendWithin(t *testing.T, s *Store, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Append(context.Background(), Event{Type: "test.append"}) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("an append still waits after %s", d)
		return nil
	}
}

// TestChainLockHolderGoesIdle: the server ends the session of a writer
// that holds the chain lock and goes quiet, and the other replicas' appends
// go on.
func TestChainLockHolderGoesIdle(t *testing.T) {
	u := pgURL(t)
	s, err := OpenURL(context.Background(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// The stalled replica runs with the defaults: the server cuts it after
	// pgIdleInTransaction (15 s), before this append's pgLockTimeout (20 s)
	// runs out, so the append waits and then goes through.
	sick := holdChainLock(t, u)
	start := time.Now()
	err = appendWithin(t, s, 60*time.Second)
	t.Logf("the append went through after %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("append while another writer sat on the chain lock: %v", err)
	}
	if _, err := sick.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Error("the idle lock holder's session is still alive")
	}
}

// TestChainLockWaitTimesOut: a writer waiting behind a chain lock that is
// never let go fails its batch after lock_timeout with an error naming the
// chain lock, and writes again once the lock is free.
func TestChainLockWaitTimesOut(t *testing.T) {
	u := pgURL(t)
	s, err := OpenURL(context.Background(), u+"&lock_timeout=300ms", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	holder := holdChainLock(t, u)
	err = appendWithin(t, s, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "chain lock") || !strings.Contains(err.Error(), "lock_timeout") {
		t.Fatalf("append behind a held chain lock: error = %v, want one naming the chain lock and lock_timeout", err)
	}
	if _, err := holder.Exec(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := appendWithin(t, s, 30*time.Second); err != nil {
		t.Fatalf("append once the lock is free: %v", err)
	}
}

// FuzzTakeKeepalive feeds libpq keepalive parameters as a --store URL may
// hold them: each is taken out of what goes to the server, and a value that
// is no whole number of at least 0 is refused naming its parameter.
func FuzzTakeKeepalive(f *testing.F) {
	for _, seed := range [][2]string{{"keepalives_idle", "7"}, {"keepalives", "0"}, {"tcp_user_timeout", "-1"},
		{"keepalives_count", "x"}, {"keepalives_interval", "99999999999999999999"}, {"keepalives_idle", "9223372036854775807"}, {"lock_timeout", "2s"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		params := map[string]string{name: value, "application_name": "x"}
		k, err := takeKeepalive(params)
		known := strings.HasPrefix(name, "keepalives") && (name == "keepalives" || name == "keepalives_idle" ||
			name == "keepalives_interval" || name == "keepalives_count") || name == "tcp_user_timeout"
		if _, left := params[name]; left == known {
			t.Fatalf("parameter %q left for the server: %v", name, left)
		}
		if err != nil {
			if !known || !strings.Contains(err.Error(), name) {
				t.Fatalf("takeKeepalive(%q=%q) = %v", name, value, err)
			}
			return
		}
		if k.idle < 0 || k.interval < 0 || k.count < 0 || k.userTimeout < 0 {
			t.Fatalf("takeKeepalive(%q=%q) = %+v", name, value, k)
		}
	})
}

// A setting in the URL's options keeps the store's default of that
// setting only, matched by its whole name as the server parses options:
// deadlock_timeout there left the store without its lock_timeout.
func TestHardenOptionsWholeNames(t *testing.T) {
	tests := []struct {
		options string
		want    string // lock_timeout the write pool sets itself
	}{
		{options: "-c deadlock_timeout=2s", want: pgLockTimeout},
		{options: "-c lock_timeout=5s", want: ""},
		{options: "-clock_timeout=5s", want: ""},
		{options: "--lock-timeout=5s", want: ""},
		{options: "-c LOCK_TIMEOUT=5s", want: ""},
		{options: `-c search_path=a\ lock_timeout=1s`, want: pgLockTimeout},
		{options: "-c application_name=x  -c   lock_timeout=0", want: ""},
		{options: "lock_timeout=5s", want: pgLockTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.options, func(t *testing.T) {
			cfg, err := pgx.ParseConfig("postgres://u@127.0.0.1/db")
			if err != nil {
				t.Fatal(err)
			}
			cfg.RuntimeParams["options"] = tc.options
			if err := harden(cfg, true); err != nil {
				t.Fatal(err)
			}
			if got := cfg.RuntimeParams["lock_timeout"]; got != tc.want {
				t.Errorf("lock_timeout = %q with options %q; want %q", got, tc.options, tc.want)
			}
		})
	}
}

// FuzzOptionSettings checks that any options parse, into names as the
// server compares them (lower case, "_" for "-").
func FuzzOptionSettings(f *testing.F) {
	for _, s := range []string{"-c lock_timeout=1s", `--a-b=c\ d -cx=y`, "-c", `\`, "-- -c =", "\t-c\vq=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, options string) {
		for _, n := range optionSettings(options) {
			if n != strings.ToLower(n) || strings.Contains(n, "-") {
				t.Errorf("optionSettings(%q) has name %q", options, n)
			}
		}
	})
}

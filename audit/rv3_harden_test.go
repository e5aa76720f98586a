package audit

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// rv3: options naming deadlock_timeout suppress the store's lock_timeout,
// since setDefault looks for "lock_timeout=" anywhere in options.
func TestRV3HardenDeadlockTimeoutOption(t *testing.T) {
	cfg, err := pgx.ParseConfig("postgres://u@127.0.0.1/db?options=-c%20deadlock_timeout%3D2s")
	if err != nil {
		t.Fatal(err)
	}
	if err := harden(cfg, true); err != nil {
		t.Fatal(err)
	}
	if cfg.RuntimeParams["lock_timeout"] != pgLockTimeout {
		t.Errorf("lock_timeout = %q with options %q; want the default %s", cfg.RuntimeParams["lock_timeout"], cfg.RuntimeParams["options"], pgLockTimeout)
	}
}

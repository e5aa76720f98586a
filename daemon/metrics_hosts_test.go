package daemon

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/notify"
)

// TestMetricsHostsExpiring: the gauge counts enrolled hosts whose
// certificate expires within 72h, not removed ones nor those further off.
func TestMetricsHostsExpiring(t *testing.T) {
	ctx := context.Background()
	store, err := audit.Open(filepath.Join(t.TempDir(), "jitssh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	hosts := []audit.Host{
		{Name: "soon", Address: "10.0.0.1:22", EnrolledAt: now, CertSerial: 1, CertExpiresAt: now.Add(24 * time.Hour)},
		{Name: "later", Address: "10.0.0.2:22", EnrolledAt: now, CertSerial: 2, CertExpiresAt: now.Add(30 * 24 * time.Hour)},
		{Name: "gone", Address: "10.0.0.3:22", EnrolledAt: now, CertSerial: 3, CertExpiresAt: now.Add(time.Hour), RemovedAt: now},
	}
	if err := store.Do(ctx, func(tx *audit.Tx) error {
		for _, h := range hosts {
			if err := tx.PutHost(h); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m := metricsHandler{store: store, webhooks: func() notify.Stats { return notify.Stats{} }, clock: func() time.Time { return now }}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `jitssh_hosts_cert_expiring{within="72h"} 1`; !strings.Contains(rec.Body.String(), want+"\n") {
		t.Errorf("metrics lack %q:\n%s", want, rec.Body.String())
	}
}

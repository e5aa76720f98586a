package daemon

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/notify"
	"github.com/jitssh/jitssh/recstore"
)

// metricsHandler serves jitd's metrics in the Prometheus text exposition
// format (version 0.0.4). Everything is read at scrape time from where it
// already lives: the audit log's counts by event type (issuances, denials,
// approvals, logins, sessions, refusals...), the bastion's live sessions and
// the webhook sender's counters. It listens only where the operator says
// (jitd serve --metrics), never on the API port.
type metricsHandler struct {
	store        *audit.Store
	liveSessions func() int // nil without a bastion
	refused      func() uint64
	webhooks     func() notify.Stats
	clock        func() time.Time
	uploads      func() recstore.Backlog // nil when recordings stay local
	feed         *replicaFeed            // nil: no feed metrics
	proxy        *proxyGate              // nil without PROXY protocol balancers
}

// hostsExpiringWithin is the window of jitssh_hosts_cert_expiring: hosts
// renew daily, so a certificate this close to its end means renewal fails.
const hostsExpiringWithin = 72 * time.Hour

func (m metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	counts, err := m.store.EventCounts(r.Context())
	if err != nil {
		http.Error(w, "audit store unavailable", http.StatusServiceUnavailable)
		return
	}
	var b strings.Builder
	family(&b, "jitssh_audit_events_total", "counter", "Events in the audit log, by type.")
	for _, typ := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "jitssh_audit_events_total{type=\"%s\"} %d\n", labelValue(typ), counts[typ])
	}
	if m.liveSessions != nil {
		family(&b, "jitssh_bastion_live_sessions", "gauge", "Recorded bastion sessions open now.")
		fmt.Fprintf(&b, "jitssh_bastion_live_sessions %d\n", m.liveSessions())
		family(&b, "jitssh_bastion_refused_connections_total", "counter", "Bastion connections closed at accept over the unauthenticated caps.")
		fmt.Fprintf(&b, "jitssh_bastion_refused_connections_total %d\n", m.refused())
	}
	if m.uploads != nil {
		bl := m.uploads()
		family(&b, "jitssh_recordings_upload_pending_files", "gauge", "Recordings in the spool not yet confirmed in the object store, live ones included.")
		fmt.Fprintf(&b, "jitssh_recordings_upload_pending_files %d\n", bl.Files)
		family(&b, "jitssh_recordings_upload_pending_bytes", "gauge", "Bytes of spooled recordings not yet in a stored part or object.")
		fmt.Fprintf(&b, "jitssh_recordings_upload_pending_bytes %d\n", bl.Bytes)
		family(&b, "jitssh_recordings_upload_parked_files", "gauge", "Spooled recordings kept and not uploaded because they differ from the digest the audit chain holds (look at them: tampering or disk damage).")
		fmt.Fprintf(&b, "jitssh_recordings_upload_parked_files %d\n", bl.Parked)
	}
	hosts, err := m.store.Hosts(r.Context())
	if err != nil {
		http.Error(w, "audit store unavailable", http.StatusServiceUnavailable)
		return
	}
	family(&b, "jitssh_hosts_cert_expiring", "gauge", "Enrolled hosts whose host certificate expires within the window.")
	fmt.Fprintf(&b, "jitssh_hosts_cert_expiring{within=%q} %d\n", "72h", grant.ExpiringCount(hosts, m.clock(), hostsExpiringWithin))
	if err := feedMetrics(r.Context(), &b, m.store, m.feed, time.Now()); err != nil {
		http.Error(w, "audit store unavailable", http.StatusServiceUnavailable)
		return
	}
	m.proxy.metrics(&b)
	if err := accountMetrics(&b, r, m.store); err != nil {
		http.Error(w, "audit store unavailable", http.StatusServiceUnavailable)
		return
	}
	st := m.webhooks()
	family(&b, "jitssh_webhook_deliveries_total", "counter", "Webhook deliveries by outcome, per endpoint.")
	for _, kv := range []struct {
		result string
		n      int64
	}{{"delivered", st.Delivered}, {"failed", st.Failed}, {"dropped", st.Dropped}} {
		fmt.Fprintf(&b, "jitssh_webhook_deliveries_total{result=%q} %d\n", kv.result, kv.n)
	}
	family(&b, "jitssh_webhook_retries_total", "counter", "Webhook delivery attempts that were retried.")
	fmt.Fprintf(&b, "jitssh_webhook_retries_total %d\n", st.Retries)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}

func family(b *strings.Builder, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// labelValue escapes a label value as the text format requires.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

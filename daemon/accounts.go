package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/issuance"
	"github.com/jitssh/jitssh/provision"
)

// newAccounts wires the provisioner of ephemeral accounts: the helper run
// over SSH with provisioning certificates from the one door, targets
// resolved and checked as the bastion does, sessions live as the bastion
// sees them (d.bastion, set once the bastion runs).
func (d *Daemon) newAccounts(keys *ca.Keys, backend *bastionBackend) (*provision.Accounts, error) {
	iss, err := issuance.New(issuance.Config{Store: d.store, Keys: keys, Clock: d.cfg.Clock})
	if err != nil {
		return nil, err
	}
	runner, err := provision.NewSSHRunner(provision.SSHConfig{
		Issuer: iss, HostCA: keys.Host.PublicKey(), Revoked: backend.HostCertificateRevoked,
		Resolve: func(name string) (provision.Target, bool) {
			h, ok := d.policy.Current().Host(name)
			return provision.Target{Name: h.Name, Address: h.Address, HostKey: h.HostKey}, ok
		},
		EgressAddresses: d.cfg.EgressAddresses, Clock: d.cfg.Clock,
	})
	if err != nil {
		return nil, err
	}
	return provision.New(provision.Config{
		Store: d.store, Runner: runner, UIDMin: d.cfg.EphemeralUIDMin, UIDMax: d.cfg.EphemeralUIDMax, Clock: d.cfg.Clock,
		Live:      d.grantLive,
		Exclusive: d.exclusive,
		Logger:    d.log.With("component", "accounts"),
	})
}

// grantLive reports whether a session of request id is open: on this
// replica's bastion, or on another replica that is up (replica_wire.go).
func (d *Daemon) grantLive(id string) bool {
	if d.bastion != nil {
		for _, s := range d.bastion.LiveSessions() {
			if s.RequestID == id {
				return true
			}
		}
	}
	return d.liveElsewhere(id)
}

// PrepareAccount has the provisioner create the grant's ephemeral account
// if it has one and it does not exist yet.
func (b *bastionBackend) PrepareAccount(ctx context.Context, req bastion.AccountRequest) error {
	if b.accounts == nil {
		return nil
	}
	return b.accounts.Prepare(ctx, req.RequestID, req.Host, req.Login)
}

// accountMetrics writes the ephemeral account gauges: accounts by state
// and removals pending (due or backing off), so stuck ones show.
func accountMetrics(b *strings.Builder, r *http.Request, store *audit.Store) error {
	counts, err := store.AccountCounts(r.Context())
	if err != nil {
		return err
	}
	family(b, "jitssh_ephemeral_accounts", "gauge", "Ephemeral accounts by state.")
	for _, st := range []string{audit.AccountPlanned, audit.AccountCreated, audit.AccountRemoving, audit.AccountRemoved, audit.AccountFailed} {
		fmt.Fprintf(b, "jitssh_ephemeral_accounts{state=%q} %d\n", st, counts[st])
	}
	family(b, "jitssh_ephemeral_removals_pending", "gauge", "Ephemeral accounts whose removal failed and is being retried.")
	fmt.Fprintf(b, "jitssh_ephemeral_removals_pending %d\n", counts[audit.AccountRemoving])
	return nil
}

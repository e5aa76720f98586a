package grant

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/policy"
)

// HostCertLifetime is the validity of a host certificate issued at join or
// renewal; hosts renew well before (RenewBefore is at two thirds of it).
const HostCertLifetime = 30 * 24 * time.Hour

// Join token lives: the default and the longest an admin may ask for.
const (
	DefaultJoinTokenTTL = time.Hour
	MaxJoinTokenTTL     = 24 * time.Hour
)

const (
	joinTokenPrefix = "jhj_"
	// hostChallengeTTL is how long a renewal nonce may wait for its
	// signature.
	hostChallengeTTL = 2 * time.Minute
)

// Codes of hosts as data, in addition to those in errors.go.
const (
	CodeJoinTokenInvalid = "join_token_invalid"
	CodeHostKeyChanged   = "host_key_changed"
	CodeHostRemoved      = "host_removed"
	CodeInvalidAddress   = "invalid_address"
	CodeInvalidLabel     = "invalid_label"
	CodeHostNotEnrolled  = "host_not_enrolled"
)

// Event types of hosts as data. The host certificate itself is recorded by
// the issuance door as host_cert.issued, with code "join" or "renew".
const (
	EventHostTokenCreated = "host.token_created"
	EventHostJoined       = "host.joined"
	EventHostJoinFailed   = "host.join_failed"
	EventHostCertRenewed  = "host_cert.renewed"
	EventHostRenewFailed  = "host.renew_failed"
	EventHostRemoved      = "host.removed"
)

// HostsConfig holds what Hosts needs beyond its Service. Reloader and
// Message are required.
type HostsConfig struct {
	// Reloader merges the store's hosts into the policy in force after a
	// join or a removal (its RefreshUsers reads users and hosts).
	Reloader Reloader
	// Message returns the exact bytes a host signs to renew: the API binds
	// its TLS certificate in (api.HostRenewMessage).
	Message func(name, nonce string) []byte
	// Reserved are the names in the bastion's own host certificate (its
	// alias and public names): the host CA signs both, so a target given
	// one of them could pass for the bastion. Tokens for them are refused.
	Reserved []string
}

// Hosts is the inventory's domain: join tokens, joins, renewals and
// removals of target hosts. Every outcome is recorded here; host
// certificates go through the issuance door of its Service. It is safe for
// concurrent use.
type Hosts struct {
	svc *Service
	cfg HostsConfig

	challenges *nonces // renewal nonces, bound to the host name
}

// NewHosts returns the hosts domain over s (its store, policy, clock,
// random source and issuer), or an error naming the missing configuration.
func (s *Service) NewHosts(cfg HostsConfig) (*Hosts, error) {
	switch {
	case cfg.Reloader == nil:
		return nil, errors.New("grant: hosts config: Reloader is required")
	case cfg.Message == nil:
		return nil, errors.New("grant: hosts config: Message is required")
	}
	return &Hosts{svc: s, cfg: cfg, challenges: newNonces(s.cfg.Store, hostChallengeTTL, purposeRenewal, "renewals", RenewalsPerHost)}, nil
}

func (h *Hosts) now() time.Time      { return h.svc.cfg.Clock().UTC() }
func (h *Hosts) store() *audit.Store { return h.svc.cfg.Store }

// HostTokenSpec is what an admin binds a join token to.
type HostTokenSpec struct {
	Name, Address string
	Labels        map[string]string
	// TTL is the token's life ("2h"); empty means DefaultJoinTokenTTL.
	TTL string
}

// HostToken is a join token made for a host; Token is shown once.
type HostToken struct {
	Token     string
	Host      string
	ExpiresAt time.Time
}

// CreateToken makes a one-time join token bound to spec's name, address and
// labels, stores its hash and records host.token_created in the same
// transaction. The caller must hold the admin role (the API checks it).
// Bad names, addresses, labels and TTLs are KindInvalid and not recorded.
func (h *Hosts) CreateToken(ctx context.Context, caller Caller, spec HostTokenSpec) (HostToken, error) {
	ttl, err := checkTokenSpec(spec, h.cfg.Reserved)
	if err != nil {
		return HostToken{}, err
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(h.svc.cfg.Rand, raw); err != nil {
		return HostToken{}, fmt.Errorf("draw join token: %w", err)
	}
	token := joinTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := h.now()
	tok := audit.JoinToken{Hash: hashJoinToken(token), Host: spec.Name, Address: spec.Address, Labels: maps.Clone(spec.Labels),
		CreatedBy: caller.User, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err = h.store().Do(ctx, func(tx *audit.Tx) error {
		if err := tx.InsertJoinToken(tok); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: EventHostTokenCreated, Code: "ok", Actor: caller.User, Host: spec.Name,
			ClientAddr: caller.ClientAddr, Data: map[string]string{"address": spec.Address, "labels": labelText(spec.Labels),
				"expires_at": tok.ExpiresAt.Format(time.RFC3339)}})
		return err
	})
	if err != nil {
		return HostToken{}, unavailable(err)
	}
	return HostToken{Token: token, Host: spec.Name, ExpiresAt: tok.ExpiresAt}, nil
}

func checkTokenSpec(spec HostTokenSpec, reserved []string) (time.Duration, error) {
	if err := policy.ValidName("host", spec.Name); err != nil {
		return 0, &Error{Kind: KindInvalid, Code: string(policy.ReasonInvalidHost), Message: err.Error()}
	}
	if err := policy.ValidAddress(spec.Address); err != nil {
		return 0, &Error{Kind: KindInvalid, Code: CodeInvalidAddress, Message: fmt.Sprintf("host %q: %v", spec.Name, err)}
	}
	addrHost, _, _ := net.SplitHostPort(spec.Address)
	for _, r := range reserved {
		if strings.EqualFold(spec.Name, r) || strings.EqualFold(addrHost, r) {
			return 0, newError(KindInvalid, string(policy.ReasonInvalidHost),
				"host %q at %s: %q names the bastion (its host certificate carries it), so no target may have it", spec.Name, spec.Address, r)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Labels)) {
		if err := policy.ValidLabel(k, spec.Labels[k]); err != nil {
			return 0, &Error{Kind: KindInvalid, Code: CodeInvalidLabel, Message: fmt.Sprintf("host %q: %v", spec.Name, err)}
		}
	}
	ttl, err := parseTTL("ttl", spec.TTL)
	if err != nil {
		return 0, &Error{Kind: KindInvalid, Code: string(policy.ReasonTTLInvalid), Message: err.Error()}
	}
	if ttl == 0 {
		ttl = DefaultJoinTokenTTL
	}
	if ttl > MaxJoinTokenTTL {
		return 0, newError(KindInvalid, string(policy.ReasonTTLTooLong), "join token ttl %s exceeds the maximum %s", ttl, MaxJoinTokenTTL)
	}
	return ttl, nil
}

func hashJoinToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// labelText is labels as sorted k=v pairs, for event data.
func labelText(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// Enrolled is a host as join or renewal left it: its row, the host
// certificate just issued, the logins the policy may grant on it and when
// it should renew.
type Enrolled struct {
	Host        audit.Host
	Certificate *ssh.Certificate
	Logins      []string
	RenewBefore time.Time
}

// enrolled describes row with cert, the logins of the policy in force.
func (h *Hosts) enrolled(row audit.Host, cert *ssh.Certificate) Enrolled {
	issued := time.Unix(int64(cert.ValidAfter), 0).UTC()
	expires := time.Unix(int64(cert.ValidBefore), 0).UTC()
	logins := h.svc.cfg.Policy().HostLogins(policy.Host{Name: row.Name, Address: row.Address, Labels: row.Labels})
	if logins == nil {
		logins = []string{}
	}
	return Enrolled{Host: row, Certificate: cert, Logins: logins, RenewBefore: issued.Add(expires.Sub(issued) * 2 / 3)}
}

// hostPrincipals are a host certificate's principals: the host name and the
// host part of its address (the bastion checks either).
func hostPrincipals(name, address string) []string {
	out := []string{name}
	if host, _, err := net.SplitHostPort(address); err == nil && host != name {
		out = append(out, host)
	}
	return out
}

// sameKey reports whether the authorized_keys line have holds key.
func sameKey(have string, key ssh.PublicKey) bool {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(have))
	return err == nil && string(k.Marshal()) == string(key.Marshal())
}

// keyLine is key in authorized_keys form without a comment.
func keyLine(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// HostView is a host of the inventory for an admin: the store's row, or a
// host the policy file lists that the store does not hold (FromPolicy).
type HostView struct {
	audit.Host
	FromPolicy bool
}

// List returns the inventory, by name: the enrolled hosts not removed and
// the policy file's hosts the store does not hold. A positive expiring
// keeps only enrolled hosts whose certificate expires within it.
func (h *Hosts) List(ctx context.Context, expiring time.Duration) ([]HostView, error) {
	rows, err := h.store().Hosts(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	now := h.now()
	stored := map[string]bool{}
	var out []HostView
	for _, r := range rows {
		if !r.RemovedAt.IsZero() {
			continue
		}
		stored[r.Name] = true
		if expiring > 0 && (r.CertExpiresAt.IsZero() || !r.CertExpiresAt.Before(now.Add(expiring))) {
			continue
		}
		out = append(out, HostView{Host: r})
	}
	if expiring <= 0 {
		pol := h.svc.cfg.Policy()
		for name, ph := range pol.Hosts {
			if stored[name] {
				continue
			}
			v := HostView{Host: audit.Host{Name: name, Address: ph.Address, Labels: ph.Labels}, FromPolicy: true}
			if ph.HostKey != nil {
				v.HostKey = keyLine(ph.HostKey)
			}
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b HostView) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// KnownHosts returns the known_hosts text engineers and the bastion may
// install: the host CA as @cert-authority for every name, and the host key
// of each removed host as @revoked, so that a copied certificate of a
// removed host is refused too.
func (h *Hosts) KnownHosts(ctx context.Context) (string, error) {
	rows, err := h.store().Hosts(ctx)
	if err != nil {
		return "", unavailable(err)
	}
	if h.svc.cfg.Keys.Host == nil {
		return "", newError(KindInternal, CodeInternal, "no host CA key configured")
	}
	var b strings.Builder
	b.WriteString("@cert-authority * " + ca.PublicKeyLine(h.svc.cfg.Keys.Host.PublicKey(), "jitssh host CA") + "\n")
	for _, r := range rows {
		if r.RemovedAt.IsZero() || r.HostKey == "" {
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.HostKey))
		if err != nil {
			continue
		}
		b.WriteString("@revoked * " + keyLine(key) + "\n")
	}
	return b.String(), nil
}

// ExpiringCount is how many enrolled hosts (not removed) hold a host
// certificate that expires within d of now: what jitssh_hosts_cert_expiring
// reports.
func ExpiringCount(hosts []audit.Host, now time.Time, d time.Duration) int {
	n := 0
	for _, r := range hosts {
		if r.RemovedAt.IsZero() && !r.CertExpiresAt.IsZero() && r.CertExpiresAt.Before(now.Add(d)) {
			n++
		}
	}
	return n
}

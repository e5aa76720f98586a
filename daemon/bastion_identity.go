package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/issuance"
)

// BastionHostKeyAlias is a principal of the bastion's host certificate that
// does not depend on the address it is reached by; `jit ssh` checks the
// certificate under this name (ssh -o HostKeyAlias).
const BastionHostKeyAlias = "jitssh-bastion"

// DefaultBastionCertLifetime is the lifetime of the bastion's host
// certificate when Config.BastionCertLifetime is zero. The daemon certifies
// its host key at every start and renews the certificate once two thirds
// of its lifetime have passed.
const DefaultBastionCertLifetime = 7 * 24 * time.Hour

// Codes of the host_cert.issued event of the bastion's own certificate:
// at start, and each renewal while it runs.
const (
	eventBastion        = "bastion"
	eventBastionRenewal = "bastion_renewal"
)

// renewRetry is how long the bastion waits after a failed renewal (the
// store unavailable, say) before it tries again; the certificate in use
// still has a third of its lifetime left at the first attempt.
const renewRetry = time.Minute

// errPublicAddrNeeded is the refusal of a bastion listening on every
// address with nothing to say which name engineers dial.
const errPublicAddrNeeded = "add --public-addr NAME:PORT, the name engineers dial"

// bastionIdentity is the bastion's host key with its current certificate:
// it certifies the key through the door and, while the daemon serves,
// renews the certificate and hands the new one to the running bastion.
type bastionIdentity struct {
	iss        *issuance.Issuer
	key        ssh.Signer
	principals []string
	lifetime   time.Duration
	clock      func() time.Time
	log        *slog.Logger
	srv        *bastion.Server

	mu      sync.Mutex
	renewAt time.Time // when the certificate in use is due for renewal
}

// certify issues a certificate of the host key for the principals, with
// code as its event's code, and returns the signer presenting it; it moves
// the renewal point to two thirds of the new certificate's lifetime.
func (b *bastionIdentity) certify(ctx context.Context, code string) (ssh.Signer, error) {
	now := b.clock().UTC()
	signer, err := certifyBastion(ctx, b.iss, b.key, b.principals, b.lifetime, now, code)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.renewAt = now.Add(b.lifetime * 2 / 3)
	b.mu.Unlock()
	return signer, nil
}

// due is when the certificate in use should be renewed.
func (b *bastionIdentity) due() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.renewAt
}

// run renews the certificate when it is due, until ctx is done. The clock
// decides whether it is due; a real timer only wakes it, at most every
// second, so a test clock and short lifetimes both work. A failed renewal
// is logged and tried again after renewRetry; the certificate in use stays.
func (b *bastionIdentity) run(ctx context.Context) {
	for {
		wait := min(max(b.due().Sub(b.clock()), 0), time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if b.clock().Before(b.due()) {
			continue
		}
		if err := b.renew(ctx); err != nil {
			b.log.Error("renew the bastion host certificate; retrying", "err", err, "retry_in", renewRetry)
			b.mu.Lock()
			b.renewAt = b.clock().Add(renewRetry)
			b.mu.Unlock()
		}
	}
}

// renew issues a new certificate and swaps it into the running bastion.
func (b *bastionIdentity) renew(ctx context.Context) error {
	signer, err := b.certify(ctx, eventBastionRenewal)
	if err != nil {
		return err
	}
	if err := b.srv.SetHostSigner(signer); err != nil {
		return err
	}
	cert := signer.PublicKey().(*ssh.Certificate)
	b.log.Info("bastion host certificate renewed", "serial", cert.Serial,
		"valid_before", time.Unix(int64(cert.ValidBefore), 0).UTC(), "principals", cert.ValidPrincipals)
	return nil
}

// certifyBastion has the door record, then sign, the bastion's host
// certificate for hostKey, valid for lifetime from now, and returns the
// signer that presents it. code tells a start from a renewal in the audit
// trail.
func certifyBastion(ctx context.Context, iss *issuance.Issuer, hostKey ssh.Signer, principals []string, lifetime time.Duration, now time.Time, code string) (ssh.Signer, error) {
	cert, err := iss.Host(ctx, issuance.HostSpec(hostKey.PublicKey(), principals, lifetime, now), issuance.Record{
		Certificate: audit.Certificate{Host: BastionHostKeyAlias, IssuedAt: now},
		Event:       audit.Event{Time: now, Code: code, Actor: "jitd", Host: BastionHostKeyAlias},
	})
	if err != nil {
		return nil, fmt.Errorf("certify bastion host key: %w", err)
	}
	return ca.HostCertSigner(hostKey, cert)
}

// reservedHostNames are the names of the bastion's certificate that no
// target may be enrolled under: the alias and the public names. Loopback
// names are left out: targets on this machine are dialled there too, and
// jit checks the bastion under its alias.
func reservedHostNames(publicAddrs []string) []string {
	names := []string{BastionHostKeyAlias}
	for _, a := range publicAddrs {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			names = append(names, h)
		}
	}
	return names
}

// bastionPrincipals are the names the bastion's host certificate is valid
// for: the alias `jit ssh` checks, the host of each public address, the
// listen host if it is a specific one, loopback names when it listens on
// loopback, and, without public addresses, the machine's name as before.
func bastionPrincipals(listenAddr string, publicAddrs []string) []string {
	principals := []string{BastionHostKeyAlias}
	add := func(names ...string) {
		for _, n := range names {
			if n != "" && !slices.Contains(principals, n) {
				principals = append(principals, n)
			}
		}
	}
	for _, a := range publicAddrs {
		if h, _, err := net.SplitHostPort(a); err == nil {
			add(h)
		}
	}
	h, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return principals
	}
	if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
		add("localhost", "127.0.0.1", h)
	} else if ip == nil || !ip.IsUnspecified() {
		add(h)
	}
	if len(publicAddrs) == 0 {
		if name, err := os.Hostname(); err == nil {
			add(name)
		}
	}
	return principals
}

// checkBastionAddrs refuses public addresses that are not NAME:PORT, and a
// bastion that listens on every address (0.0.0.0, ::, or no host) without
// one: its listen address says nothing engineers could dial or check the
// host certificate against.
func checkBastionAddrs(listenAddr string, publicAddrs []string) error {
	for _, a := range publicAddrs {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("--public-addr %q: want NAME:PORT or [IPV6]:PORT: %w", a, err)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--public-addr %q: port %q is not a number from 1 to 65535", a, p)
		}
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("--public-addr %q: give the name or address engineers dial, not %q", a, h)
		}
	}
	h, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return fmt.Errorf("bastion listen address %q: %w", listenAddr, err)
	}
	if ip := net.ParseIP(h); len(publicAddrs) == 0 && (h == "" || ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("the bastion listens on %s, every address of this machine: %s", listenAddr, errPublicAddrNeeded)
	}
	return nil
}

// advertisedBastion is the address /v1/ca gives engineers: the first public
// address, else the one the bastion listens on.
func advertisedBastion(listening string, publicAddrs []string) string {
	if len(publicAddrs) > 0 {
		return publicAddrs[0]
	}
	return listening
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/atomicfile"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/issuance"
)

// HostCertRequest asks for a certificate of a target's host key, as
// `jitd host certify` does.
type HostCertRequest struct {
	// KeyPath is the host public key file (ssh_host_ed25519_key.pub); the
	// certificate is written beside it as KEY-cert.pub.
	KeyPath string
	// Principals are the host's name as in the policy inventory and its
	// addresses; the first is recorded as the certificate's host.
	Principals []string
	// ValidFor is the certificate's lifetime from now; it must be positive.
	ValidFor time.Duration
	// Actor is who asks, for the audit record; empty means the operating
	// system user running this process.
	Actor string
}

// CertifyHostKey certifies a target's host key with the host CA of the data
// directory dir: the certificate's row and its host_cert.issued event (code
// "target") are committed in the audit store before it is signed, then it
// is written beside the key. It returns the certificate and the path
// written. The store may be in use by a running jitd at the same time.
func CertifyHostKey(ctx context.Context, dir string, req HostCertRequest, now time.Time) (*ssh.Certificate, string, error) {
	return Layout{Dir: dir}.CertifyHostKey(ctx, req, now)
}

// CertifyHostKey is the package's CertifyHostKey for l's data directory
// and store.
func (l Layout) CertifyHostKey(ctx context.Context, req HostCertRequest, now time.Time) (*ssh.Certificate, string, error) {
	if req.ValidFor <= 0 {
		return nil, "", fmt.Errorf("certify host: validity %v must be positive", req.ValidFor)
	}
	if len(req.Principals) == 0 {
		return nil, "", errors.New("certify host: at least one principal is required")
	}
	b, err := os.ReadFile(req.KeyPath)
	if err != nil {
		return nil, "", fmt.Errorf("read host key: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, "", fmt.Errorf("parse host key %s: %w", req.KeyPath, err)
	}
	if err := bastion.CheckTargetHostKey(pub.Type()); err != nil {
		return nil, "", fmt.Errorf("host key %s: %w", req.KeyPath, err)
	}
	if err := l.CheckModes(); err != nil {
		return nil, "", err
	}
	keys, err := ca.LoadKeys(l.CADir())
	if err != nil {
		return nil, "", err
	}
	store, err := l.OpenStore(ctx)
	if err != nil {
		return nil, "", err
	}
	defer store.Close()
	iss, err := issuance.New(issuance.Config{Store: store, Keys: keys})
	if err != nil {
		return nil, "", err
	}
	actor := req.Actor
	if actor == "" {
		actor = operator("jitd host certify")
	}
	now = now.UTC().Truncate(time.Second)
	cert, err := iss.Host(ctx, issuance.HostSpec(pub, req.Principals, req.ValidFor, now), issuance.Record{
		Certificate: audit.Certificate{Host: req.Principals[0], IssuedAt: now},
		Event: audit.Event{Time: now, Code: "target", Actor: actor, Host: req.Principals[0],
			Data: map[string]string{"via": "jitd host certify"}},
	})
	if err != nil {
		return nil, "", fmt.Errorf("certify host %s: %w", req.Principals[0], err)
	}
	out := strings.TrimSuffix(req.KeyPath, ".pub") + "-cert.pub"
	if err := atomicfile.Write(out, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		return nil, "", fmt.Errorf("write host certificate: %w", err)
	}
	return cert, out, nil
}

// operator names the operating system user running this process as an
// audit actor, or fallback if it cannot be told.
func operator(fallback string) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "operator:" + u.Username
	}
	return fallback
}

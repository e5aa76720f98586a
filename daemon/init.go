// Package daemon is jitd's runtime: it lays out the data directory (Init),
// and its Daemon value loads keys and policy, opens the audit store, wires
// the lifecycle, the HTTPS API and the bastion together, serves them and
// shuts them down. cmd/jitd parses flags, handles signals and calls in.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/atomicfile"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/policy"
)

// Layout names the files under a data directory, and the audit store.
type Layout struct {
	Dir string
	// Store is the audit store's postgres:// URL (jitd --store); empty
	// means the embedded SQLite file Database() (store.go).
	Store string
}

// CADir holds the three CA key pairs.
func (l Layout) CADir() string { return filepath.Join(l.Dir, "ca") }

// TLSDir holds the API's TLS certificate and key.
func (l Layout) TLSDir() string { return filepath.Join(l.Dir, "tls") }

// Database is the SQLite audit store.
func (l Layout) Database() string { return filepath.Join(l.Dir, "jitssh.db") }

// PolicyFile is the policy the daemon enforces.
func (l Layout) PolicyFile() string { return filepath.Join(l.Dir, "policy.yaml") }

// BastionHostKey is the bastion's own host key; the host CA certifies it.
func (l Layout) BastionHostKey() string { return filepath.Join(l.Dir, "bastion_host_key") }

// Recordings is where session recordings are written.
func (l Layout) Recordings() string { return filepath.Join(l.Dir, "recordings") }

// CheckpointKey signs the audit chain head.
func (l Layout) CheckpointKey() string { return filepath.Join(l.Dir, "ca", "checkpoint_key") }

// InitResult reports what Init found or made.
type InitResult struct {
	Created        []string
	UserCA         string
	HostCA         string
	TargetCA       string
	TLSFingerprint string
}

// Init creates whatever is missing in the data directory: CA keys, the TLS
// certificate, the database and a demo policy. It never overwrites a key or
// a policy that exists, so running it again is safe.
func Init(ctx context.Context, dir string, alg ca.Algorithm, tlsHosts []string, now time.Time) (InitResult, error) {
	return Layout{Dir: dir}.Init(ctx, alg, tlsHosts, now)
}

// Init is the package's Init for l's data directory and audit store: on
// PostgreSQL it applies the migrations there.
func (l Layout) Init(ctx context.Context, alg ca.Algorithm, tlsHosts []string, now time.Time) (InitResult, error) {
	dir := l.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return InitResult{}, fmt.Errorf("create data directory: %w", err)
	}
	keys, created, err := ca.InitKeys(l.CADir(), alg)
	if err != nil {
		return InitResult{}, fmt.Errorf("init CA keys: %w", err)
	}
	res := InitResult{Created: created}
	if _, err := os.Stat(filepath.Join(l.TLSDir(), "tls.crt")); errors.Is(err, os.ErrNotExist) {
		res.Created = append(res.Created, filepath.Join(l.TLSDir(), "tls.crt"))
	}
	if err := os.MkdirAll(l.TLSDir(), 0o700); err != nil {
		return InitResult{}, fmt.Errorf("create tls directory: %w", err)
	}
	if res.TLSFingerprint, err = ca.InitTLS(l.TLSDir(), tlsHosts, now); err != nil {
		return InitResult{}, fmt.Errorf("init TLS certificate: %w", err)
	}
	// jitd serve loads the checkpoint key and never makes one, so this is
	// where it is made.
	for _, k := range []struct {
		what, path string
		alg        ca.Algorithm
	}{{"bastion host key", l.BastionHostKey(), alg}, {"checkpoint key", l.CheckpointKey(), ca.Ed25519}} {
		if _, err := os.Stat(k.path); errors.Is(err, os.ErrNotExist) {
			res.Created = append(res.Created, k.path)
		}
		if _, err := ca.LoadOrCreateHostKey(k.path, k.alg); err != nil {
			return InitResult{}, fmt.Errorf("init %s: %w", k.what, err)
		}
	}
	if err := os.MkdirAll(l.Recordings(), 0o700); err != nil {
		return InitResult{}, fmt.Errorf("create recordings directory: %w", err)
	}
	switch err := atomicfile.Create(l.PolicyFile(), policy.Demo(), 0o600); {
	case err == nil:
		res.Created = append(res.Created, l.PolicyFile())
	case !errors.Is(err, fs.ErrExist):
		return InitResult{}, fmt.Errorf("write demo policy: %w", err)
	}
	store, err := l.OpenStore(ctx)
	if err != nil {
		return InitResult{}, fmt.Errorf("init audit store: %w", err)
	}
	if err := store.Close(); err != nil {
		return InitResult{}, fmt.Errorf("close audit store: %w", err)
	}
	// What was there before may be looser than what Init makes.
	if err := l.CheckModes(); err != nil {
		return InitResult{}, err
	}
	res.UserCA = ssh.FingerprintSHA256(keys.User.PublicKey())
	res.HostCA = ssh.FingerprintSHA256(keys.Host.PublicKey())
	res.TargetCA = ssh.FingerprintSHA256(keys.Target.PublicKey())
	return res, nil
}

// Print writes the fingerprints an operator hands to engineers.
func (r InitResult) Print(w io.Writer) {
	for _, c := range r.Created {
		fmt.Fprintf(w, "created  %s\n", c)
	}
	fmt.Fprintf(w, "user CA    %s\n", r.UserCA)
	fmt.Fprintf(w, "host CA    %s\n", r.HostCA)
	fmt.Fprintf(w, "target CA  %s\n", r.TargetCA)
	fmt.Fprintf(w, "TLS        %s\n", r.TLSFingerprint)
}

// EnrolUser enrols a user directly in the data directory's store, for the
// operator on the daemon's host: it is how the first admin gets in. It
// takes the same path as the API's enrolment (grant.Admin.Enrol: the same
// checks against the policy file in force and the same audit record), with
// the operator running this process as actor. A running jitd picks the
// user up within seconds.
func EnrolUser(ctx context.Context, dir string, e grant.Enrolment) error {
	return Layout{Dir: dir}.EnrolUser(ctx, e)
}

// EnrolUser is the package's EnrolUser for l's data directory and store.
func (l Layout) EnrolUser(ctx context.Context, e grant.Enrolment) error {
	if err := l.CheckModes(); err != nil {
		return err
	}
	store, err := l.OpenStore(ctx)
	if err != nil {
		return fmt.Errorf("open audit store: %w", err)
	}
	defer store.Close()
	live, err := livepolicy.Load(ctx, l.PolicyFile(), store)
	if err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	admin, err := grant.NewAdmin(grant.AdminConfig{Store: store, Policy: live.Current, Reloader: live})
	if err != nil {
		return err
	}
	_, err = admin.Enrol(ctx, grant.Caller{User: operator("jitd user add")}, e)
	return err
}

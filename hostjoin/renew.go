package hostjoin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
)

// Renew keeps a joined host current, from the CA recorded in APIFile. When
// the installed host certificate has used two thirds of its validity (or
// is missing, unreadable, or Force is set) it proves the host key to jitd
// and installs the new certificate, KRL and logins; otherwise it only
// refreshes the KRL (GET /v1/krl, public), so a daily timer does not issue
// a certificate a day. Both install by Switch; on any error before it
// nothing has changed.
func Renew(ctx context.Context, o Options) (Result, error) {
	raw, err := os.ReadFile(o.Layout.Path(APIFile))
	if err != nil {
		return Result{}, fmt.Errorf("this host has not joined (run jit host join first): %w", err)
	}
	cfg, err := ParseAPIFile(raw)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", o.Layout.Path(APIFile), err)
	}
	name, err := readHostName(o.Layout)
	if err != nil {
		return Result{}, err
	}
	o = o.withDefaults(cfg.HostKey)
	signer, err := readSigner(o.HostKey)
	if err != nil {
		return Result{}, err
	}
	in := Install{Layout: o.Layout, HostKey: o.HostKey, Jit: o.Jit, CA: cfg.URL, Fingerprint: cfg.Fingerprint}
	unlock, err := preflight(o, in)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	cl, err := api.NewClient(cfg.URL, cfg.Fingerprint, "")
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	if due, until := certDue(in.CertPath(), signer.PublicKey(), time.Now()); !due && !o.Force {
		return refreshKRL(ctx, o, in, cl, name, until)
	}
	if o.DryRun {
		// A renewal issues (and records) a certificate: a dry run asks for
		// none and shows what jitd's answer would change as unknown, as a
		// dry join does.
		return dry(o, in)
	}
	ans, err := cl.RenewHostWithKey(ctx, name, signer)
	if err != nil {
		return Result{}, fmt.Errorf("renew %s at %s: %w", name, cfg.URL, err)
	}
	if ans.Host != name {
		return Result{}, fmt.Errorf("jitd renewed host %q, but this host is %q", bounded(ans.Host), name)
	}
	return apply(ctx, o, in, ans, signer.PublicKey())
}

// certDue reports whether the host certificate at path should be renewed:
// it is not a valid certificate for key, or two thirds of its validity
// have passed. It also returns when the certificate will be due.
func certDue(path string, key ssh.PublicKey, now time.Time) (bool, time.Time) {
	b, err := os.ReadFile(path)
	if err != nil {
		return true, time.Time{}
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	cert, ok := k.(*ssh.Certificate)
	if err != nil || !ok || !bytes.Equal(cert.Key.Marshal(), key.Marshal()) || cert.ValidBefore <= cert.ValidAfter {
		return true, time.Time{}
	}
	after, before := time.Unix(int64(cert.ValidAfter), 0), time.Unix(int64(cert.ValidBefore), 0)
	at := after.Add(before.Sub(after) * 2 / 3)
	return !now.Before(at), at
}

// refreshKRL installs the current KRL alone.
func refreshKRL(ctx context.Context, o Options, in Install, cl *api.Client, name string, due time.Time) (Result, error) {
	krl, err := cl.KRL(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("fetch the KRL from %s: %w", in.CA, err)
	}
	if len(krl) > 0 && !bytes.HasPrefix(krl, []byte(krlMagic)) {
		return Result{}, fmt.Errorf("refusing the revocation list from %s, nothing changed: not an OpenSSH KRL (%d bytes)", in.CA, len(krl))
	}
	// The account helper's wrapper too, so that a host joined before
	// ephemeral accounts gets it at its next daily renewal.
	files := []File{{Path: o.Layout.Path(KRLFile), Data: krl, Mode: 0o644}, in.accountWrapper()}
	r := Result{Host: name, DropIn: in.DropInText(), CronLine: in.CronLine(), RenewBefore: due,
		Notes: []string{"the host certificate is not due for renewal until " + due.UTC().Format(time.RFC3339) + " (--force renews it now)"}}
	if o.DryRun {
		r.Changes, err = Plan(files)
		r.Reload = NewReloader(o.Layout, o.ReloadCommand).Describe
		return r, err
	}
	if err := switchTo(ctx, o, in, files, &r); err != nil {
		return Result{}, err
	}
	return r, nil
}

package bastion

import (
	"context"
	"time"

	"golang.org/x/crypto/ssh"
)

// watchRevocation looks every certificate of the connection up again
// every RevocationInterval (RevocationBackstop while the change feed is
// healthy): the engineer's, and once a session dialled onward, the
// target certificate and the target's host certificate. It ends the
// connection, with its sessions, once the backend reports one revoked:
// revoking a grant or a host cuts live sessions, not only new ones. The
// poll is the backstop: the feed's CertificateRevoked, which finds the
// connection through the serial index registered here, asks at once; but
// a notice whose lookup failed, or that came between an onward dial and
// the indexing of its serials, is caught only here. A lookup that fails
// (the store briefly unavailable) is logged and retried; it does not cut
// sessions.
func (st *connState) watchRevocation(cert *ssh.Certificate) {
	serial := cert.Serial
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed || st.revokeT != nil {
		return
	}
	// Under st.mu, so that closed0 (which sets closed first) drops it.
	st.srv.serials.add(serial, st, serialEntry{role: roleUser, cert: cert})
	if st.srv.cfg.RevocationInterval < 0 {
		return
	}
	var t *time.Timer
	check := func() {
		st.srv.goTracked(func() {
			if st.checkAll() {
				return
			}
			st.mu.Lock()
			if !st.closed {
				t.Reset(st.srv.revocationInterval())
			}
			st.mu.Unlock()
		})
	}
	t = time.AfterFunc(st.srv.revocationInterval(), check)
	st.revokeT = t
}

// checkAll asks the backend about every certificate the connection
// presents or uses and ends it at the first one revoked; true if it did.
func (st *connState) checkAll() bool {
	for _, u := range st.srv.serials.of(st) {
		ctx, cancel := backendCtx(context.Background())
		revoked, reason, err := st.certRevoked(ctx, u.serial, u.serialEntry)
		cancel()
		if err != nil {
			st.srv.log.Warn("revocation check failed", "serial", u.serial, "err", err)
			continue
		}
		if revoked {
			st.srv.log.Info(reason+"; ending its connection", "serial", u.serial, "remote", st.remote)
			st.terminate(reason)
			return true
		}
	}
	return false
}

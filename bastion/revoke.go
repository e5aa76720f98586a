package bastion

import (
	"context"
	"time"

	"golang.org/x/crypto/ssh"
)

// watchRevocation looks the connection's certificate up again every
// RevocationInterval (RevocationBackstop while the change feed is healthy)
// and ends the connection, with its sessions, once the backend reports the
// certificate revoked: revoking a grant cuts live sessions, not only new
// ones. The poll is the backstop: the feed's CertificateRevoked, which
// finds the connection through the serial index registered here, asks at
// once. A lookup that fails (the store briefly unavailable) is logged and
// retried; it does not cut sessions.
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
			ctx, cancel := backendCtx(context.Background())
			defer cancel()
			cs, err := st.srv.cfg.Backend.CertificateStatus(ctx, cert)
			if err == nil && cs.Revoked {
				st.srv.log.Info("certificate revoked; ending its connection", "serial", serial, "remote", st.remote)
				st.terminate("certificate revoked")
				return
			}
			if err != nil {
				st.srv.log.Warn("revocation check failed", "serial", serial, "err", err)
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

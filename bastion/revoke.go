package bastion

import (
	"context"
	"time"

	"golang.org/x/crypto/ssh"
)

// watchRevocation looks the connection's certificate up again every
// RevocationInterval and ends the connection, with its sessions, once the
// backend reports the certificate revoked: revoking a grant cuts live
// sessions, not only new ones. A lookup that fails (the store briefly
// unavailable) is logged and retried; it does not cut sessions.
func (st *connState) watchRevocation(cert *ssh.Certificate) {
	serial := cert.Serial
	interval := st.srv.cfg.RevocationInterval
	if interval < 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed || st.revokeT != nil {
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
				t.Reset(interval)
			}
			st.mu.Unlock()
		})
	}
	t = time.AfterFunc(interval, check)
	st.revokeT = t
}

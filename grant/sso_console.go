package grant

import "context"

// SSOAbandon ends an authorization-code login whose redirect brought the
// provider's error (error=access_denied, …) instead of a code: the flow
// is spent and the refusal recorded as login.failed, as SSOFinish records
// its refusals.
func (l *Logins) SSOAbandon(ctx context.Context, flow, errCode, desc, clientAddr string) error {
	rp, err := l.rp()
	if err == nil {
		err = rp.Abandon(ctx, flow, errCode, desc)
	}
	return l.refuseSSO(ctx, err, MethodSSO, "", "", clientAddr, "")
}

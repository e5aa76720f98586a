package issuance

import (
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
)

// ProvisionSpec returns the spec of the target-CA certificate with which
// jitd runs the ephemeral-account helper on host (docs/ephemeral.md): the
// one principal api.ProvisionPrincipalLogin@HOST, force-command the helper
// (api.AccountHelperPath), source-address the provisioner's egress, no
// extensions at all (no pty, no forwarding, no user rc), valid
// api.ProvisionCertLifetime from now with the usual minute of backdating.
// Issue it with Issuer.Target, which records it like every certificate.
func ProvisionSpec(key ssh.PublicKey, host, requestID, op string, sourceAddresses []string, now time.Time) ca.UserCertSpec {
	crit := map[string]string{ca.OptForceCommand: api.AccountHelperPath}
	if len(sourceAddresses) > 0 {
		crit[ca.OptSourceAddress] = strings.Join(sourceAddresses, ",")
	}
	return ca.UserCertSpec{
		Key:             key,
		KeyID:           "jit-provision:" + requestID + ":" + host + ":" + op,
		Principals:      []string{api.ProvisionPrincipalLogin + "@" + host},
		ValidAfter:      now.Add(-hostBackdate),
		ValidBefore:     now.Add(api.ProvisionCertLifetime),
		Extensions:      map[string]string{},
		CriticalOptions: crit,
	}
}

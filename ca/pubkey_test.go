package ca

import (
	"crypto/elliptic"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestCheckKeyRefusesWhatTheRuleRefuses: the CA's signing paths check keys
// they did not parse (a CA key, a host key) with the same rule.
func TestCheckKeyRefusesWhatTheRuleRefuses(t *testing.T) {
	weak := testkit.RSAPublic(t, 1024)
	if err := checkKey(weak); err == nil || !strings.Contains(err.Error(), "rsa key of 1024 bits") {
		t.Fatalf("checkKey(rsa 1024) = %v", err)
	}
	if err := checkKey(testkit.ECDSAPublic(t, elliptic.P256())); err != nil {
		t.Fatalf("checkKey(ecdsa p256) = %v", err)
	}
}

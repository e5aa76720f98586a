package grant_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
)

// TestRV2LoginFloodLeavesRenewals: unanswered key-login challenges, which
// anyone may ask for without a login (here from many IPv6 /64s, each
// under its per-address bound), must not keep enrolled hosts from
// renewing their certificates. Before the challenges moved to the store,
// renewals had a bound of their own; now both purposes share one total
// (maxChallenges), so the flood makes RenewChallenge busy.
func TestRV2LoginFloodLeavesRenewals(t *testing.T) {
	ctx := context.Background()
	e, l, _ := loginEnv(t)
	h, err := e.svc.NewHosts(grant.HostsConfig{Reloader: hostsReloader{e: e, base: e.pol.Load()},
		Message: func(name, nonce string) []byte { return api.HostRenewMessage(name, nonce, testFingerprint) }})
	if err != nil {
		t.Fatal(err)
	}
	const addrs, per = 400, grant.MaxChallengesPerAddress
	var wg sync.WaitGroup
	var mu sync.Mutex
	var busy int
	for a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if _, _, err := l.Challenge(ctx, "nobody", fmt.Sprintf("[2001:db8:%x:%x::1]:1", a/256, a%256)); err != nil {
					mu.Lock()
					busy++
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d of %d addresses were refused before their %d challenges", busy, addrs, per)
	if _, _, err := h.RenewChallenge(ctx, "10.9.9.9", "db1"); err != nil {
		t.Fatalf("a host's renewal challenge during a flood of login challenges: %v", err)
	}
}

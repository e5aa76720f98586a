package sso

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestFlowBoundsAcrossReplicas checks, on both engines, that the bound of
// live flows per address holds for two replicas together (the count is
// the store's), that a flow expires after FlowTTL whichever replica sees
// it, and that a device flow whose client stopped polling is dropped and
// frees its place.
func TestFlowBoundsAcrossReplicas(t *testing.T) {
	ti, _, _ := deviceIssuer(t)
	ctx := context.Background()
	const redirect = "http://127.0.0.1:4000/callback"
	for _, eng := range storeOpeners {
		t.Run(eng.name, func(t *testing.T) {
			clock := testkit.NewClock(time.Now())
			s1, another := eng.open(t)
			cfg := &Config{Providers: []ProviderConfig{{Name: "corp", Issuer: ti.srv.URL, ClientID: "jitssh", CAFile: ti.caFile,
				Scopes: []string{"openid"}, UserClaim: "preferred_username", GroupsClaim: "groups", Algorithms: []string{"RS256"}}}}
			var rps []*RP
			for _, s := range []*audit.Store{s1, another()} {
				rp, err := New(cfg, Options{Store: s, Clock: clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				rps = append(rps, rp)
			}
			var flows []string
			for i := range MaxFlowsPerAddress - 1 {
				f, _, _, err := rps[i%2].Start(ctx, "corp", redirect, fmt.Sprintf("10.0.0.1:%d", 5000+i))
				if err != nil {
					t.Fatalf("flow %d: %v", i, err)
				}
				flows = append(flows, f)
			}
			dev, err := rps[1].StartDevice(ctx, "corp", "10.0.0.1:1")
			if err != nil {
				t.Fatal(err)
			}
			for _, rp := range rps {
				_, _, _, err := rp.Start(ctx, "corp", redirect, "10.0.0.1:9")
				wantSSOCode(t, err, CodeBusy)
			}
			// The device flow's client never polls: after abandonedPolls
			// intervals (1s each) it is dropped, freeing its place.
			clock.Advance(time.Duration(abandonedPolls)*time.Second + time.Millisecond)
			if _, _, _, err := rps[0].Start(ctx, "corp", redirect, "10.0.0.1:9"); err != nil {
				t.Fatalf("after the device flow was abandoned: %v", err)
			}
			_, _, err = rps[0].PollDevice(ctx, dev.Flow)
			wantSSOCode(t, err, CodeFlowUnknown)
			clock.Advance(FlowTTL)
			_, err = rps[1].Finish(ctx, flows[0], "code", "state")
			wantSSOCode(t, err, CodeFlowUnknown)
			if !strings.Contains(err.Error(), "expired at") {
				t.Fatalf("an expired flow: %v", err)
			}
			for i := range MaxFlowsPerAddress {
				if _, _, _, err := rps[i%2].Start(ctx, "corp", redirect, "10.0.0.1:9"); err != nil {
					t.Fatalf("after the others expired, flow %d: %v", i, err)
				}
			}
		})
	}
}

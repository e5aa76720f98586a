package sso

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rv2Clock is a clock the test moves by hand.
type rv2Clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *rv2Clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *rv2Clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rv2DeviceRP is an RP on a test issuer whose device endpoint names
// interval and whose token endpoint calls answer(n) for its n-th call
// (n from 1), returning the error code it answers with.
func rv2DeviceRP(t *testing.T, interval int, answer func(n int32) string) (*RP, *rv2Clock) {
	ti := newTestIssuer(t)
	var calls atomic.Int32
	mux := ti.srv.Config.Handler.(*http.ServeMux)
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"` + ti.srv.URL + `/device","expires_in":600,"interval":` + strconv.Itoa(interval) + `}`))
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		code := answer(calls.Add(1))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"` + code + `"}`))
	})
	clock := &rv2Clock{t: time.Now()}
	rp, _, _ := testRP(t, ti, clock.t)
	rp.opts.Clock = clock.now
	return rp, clock
}

// TestRV2DeviceFlowSurvivesSlowDown polls as jit does (waiting the
// interval each 202 names): after the provider's slow_down the flow must
// not be dropped as abandoned, since the client did exactly what it was
// told. live_until is computed at the claim from the old interval and is
// not moved by setPoll, so at interval 2 the next poll, 7 s later, finds
// the flow dead (3 x 2 s).
func TestRV2DeviceFlowSurvivesSlowDown(t *testing.T) {
	rp, clock := rv2DeviceRP(t, 2, func(n int32) string {
		if n == 1 {
			return "slow_down"
		}
		return "authorization_pending"
	})
	ctx := context.Background()
	ds, err := rp.StartDevice(ctx, "corp", "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	wait := ds.Interval
	for i := range 4 {
		clock.add(time.Duration(wait) * time.Second)
		_, pending, err := rp.PollDevice(ctx, ds.Flow)
		if err != nil {
			t.Fatalf("poll %d after waiting %ds as told: %v", i+1, wait, err)
		}
		wait = max(wait, pending)
	}
}

// TestRV2DeviceFlowSurvivesSlowProvider: the provider takes 11 s (under
// the 15 s providerTimeout) to say authorization_pending at interval 5;
// the client, which waited for that answer, polls again 5 s after it and
// must not find its flow dropped for not polling.
func TestRV2DeviceFlowSurvivesSlowProvider(t *testing.T) {
	var clock *rv2Clock
	rp, c := rv2DeviceRP(t, 5, func(n int32) string {
		clock.add(11 * time.Second) // the answer arrives 11 s after the request
		return "authorization_pending"
	})
	clock = c
	ctx := context.Background()
	ds, err := rp.StartDevice(ctx, "corp", "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		clock.add(time.Duration(ds.Interval) * time.Second)
		if _, _, err := rp.PollDevice(ctx, ds.Flow); err != nil {
			t.Fatalf("poll %d: %v", i+1, err)
		}
	}
}

// TestRV2DeviceCapRefusesBeforeProvider: with maxDeviceFlows device flows
// live, a further StartDevice is refused busy, and it must be refused
// before jitd asks the provider for a device code (maxDeviceFlows exists
// so that nobody can make jitd flood a provider; before the flows moved to
// the store, reservePoller refused ahead of DeviceAuth). Now each refused
// start still costs the provider one device authorization request.
func TestRV2DeviceCapRefusesBeforeProvider(t *testing.T) {
	ti := newTestIssuer(t)
	var deviceCalls atomic.Int32
	mux := ti.srv.Config.Handler.(*http.ServeMux)
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		deviceCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"` + ti.srv.URL + `/device","expires_in":600,"interval":5}`))
	})
	rp, _, _ := testRP(t, ti, time.Now())
	ctx := context.Background()
	for i := range maxDeviceFlows {
		if _, err := rp.StartDevice(ctx, "corp", "10.1."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250+1)+":1"); err != nil {
			t.Fatalf("device flow %d: %v", i, err)
		}
	}
	before := deviceCalls.Load()
	for i := range 20 {
		_, err := rp.StartDevice(ctx, "corp", "10.2.0."+strconv.Itoa(i+1)+":1")
		wantSSOCode(t, err, CodeBusy)
	}
	if got := deviceCalls.Load() - before; got != 0 {
		t.Fatalf("%d device authorization requests reached the provider for 20 starts refused busy, want 0", got)
	}
}

// TestRV2DeviceFlowSurvivesProviderHiccup: one 502 from the provider's
// token endpoint (its load balancer, say) is answered busy
// (sso_provider_failed, 503: "try again"), but the flow is spent with it,
// so the next poll finds it unknown and the person's approval is lost.
func TestRV2DeviceFlowSurvivesProviderHiccup(t *testing.T) {
	ti := newTestIssuer(t)
	var calls atomic.Int32
	mux := ti.srv.Config.Handler.(*http.ServeMux)
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"` + ti.srv.URL + `/device","expires_in":600,"interval":5}`))
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"authorization_pending"}`))
	})
	clock := &rv2Clock{t: time.Now()}
	rp, _, _ := testRP(t, ti, clock.t)
	rp.opts.Clock = clock.now
	ctx := context.Background()
	ds, err := rp.StartDevice(ctx, "corp", "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	clock.add(5 * time.Second)
	_, _, err = rp.PollDevice(ctx, ds.Flow)
	t.Logf("poll during the hiccup: %v", err)
	clock.add(5 * time.Second)
	if _, pending, err := rp.PollDevice(ctx, ds.Flow); err != nil || pending == 0 {
		t.Fatalf("poll after the hiccup: pending %d, %v; want the flow still pending", pending, err)
	}
}

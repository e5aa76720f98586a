package sso

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// deviceIssuer is a test issuer whose device endpoint answers with
// interval 1 and whose token endpoint is always pending; it counts the
// token calls and records the last device request's client
// authentication.
func deviceIssuer(t *testing.T) (ti *testIssuer, tokenCalls *atomic.Int32, lastAuth *atomic.Value) {
	ti = newTestIssuer(t)
	tokenCalls, lastAuth = &atomic.Int32{}, &atomic.Value{}
	mux := ti.srv.Config.Handler.(*http.ServeMux)
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		user, pass, basic := r.BasicAuth()
		lastAuth.Store(fmt.Sprintf("basic=%v:%s:%s post=%s", basic, user, pass, r.PostForm.Get("client_secret")))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"` + ti.srv.URL + `/device","expires_in":600,"interval":1}`))
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		tokenCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"authorization_pending"}`))
	})
	return ti, tokenCalls, lastAuth
}

func wantSSOCode(t *testing.T, err error, code string) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

// TestFlowsPerAddress checks that one address (an IPv6 /64 counts as one)
// holds at most MaxFlowsPerAddress live flows, code and device together,
// while another address still starts flows, and that a finished flow
// frees its slot.
func TestFlowsPerAddress(t *testing.T) {
	ti, _, _ := deviceIssuer(t)
	rp, _, _ := testRP(t, ti, time.Now())
	ctx := context.Background()
	redirect := "http://127.0.0.1:4000/callback"
	var flows []string
	for i := range MaxFlowsPerAddress - 1 {
		f, _, _, err := rp.Start(ctx, "corp", redirect, fmt.Sprintf("[2001:db8::%d]:5000", i+1))
		if err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
		flows = append(flows, f)
	}
	if _, err := rp.StartDevice(ctx, "corp", "[2001:db8::99]:5000"); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := rp.Start(ctx, "corp", redirect, "[2001:db8::ff]:1")
	wantSSOCode(t, err, CodeBusy)
	_, err = rp.StartDevice(ctx, "corp", "2001:db8::7")
	wantSSOCode(t, err, CodeBusy)
	if _, _, _, err := rp.Start(ctx, "corp", redirect, "[2001:db8:0:1::1]:5000"); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	if _, _, _, err := rp.Start(ctx, "corp", redirect, "10.0.0.1:5000"); err != nil {
		t.Fatalf("an IPv4 address: %v", err)
	}
	_, _ = rp.Finish(ctx, flows[0], "code", "wrong-state") // spends the flow
	if _, _, _, err := rp.Start(ctx, "corp", redirect, "[2001:db8::1]:5000"); err != nil {
		t.Fatalf("after a flow was spent: %v", err)
	}
}

// TestDeviceFlowAbandoned checks that jitd stops polling the provider for
// a device flow whose client stopped polling, and drops the flow, while a
// flow whose client polls goes on.
func TestDeviceFlowAbandoned(t *testing.T) {
	ti, tokenCalls, _ := deviceIssuer(t)
	rp, _, _ := testRP(t, ti, time.Now())
	rp.opts.Clock = time.Now
	ctx := context.Background()
	left, err := rp.StartDevice(ctx, "corp", "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	stays, err := rp.StartDevice(ctx, "corp", "10.0.0.2:1")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(abandonedPolls*time.Second + 3*time.Second)
	for time.Now().Before(deadline) {
		if _, pending, err := rp.PollDevice(ctx, stays.Flow); err != nil || pending == 0 {
			t.Fatalf("the polled flow: pending %d, %v", pending, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	_, _, err = rp.PollDevice(ctx, left.Flow)
	wantSSOCode(t, err, CodeFlowUnknown)
	calls := tokenCalls.Load()
	time.Sleep(2500 * time.Millisecond)
	// Only the polled flow still asks the provider, once a second.
	if got := tokenCalls.Load() - calls; got > 3 {
		t.Fatalf("%d token calls in 2.5s after the client left, want at most 3 (the polled flow's)", got)
	}
}

// TestDeviceOptions checks `device: false` and that the device request
// authenticates as the client is registered.
func TestDeviceOptions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, auth, want string
		noDevice         bool
	}{
		{name: "off", noDevice: true},
		{name: "basic", auth: "basic", want: "basic=true:jitssh:s%2Fcret post="},
		{name: "post", auth: "post", want: "basic=false:: post=s/cret"},
		{name: "default", want: "basic=false:: post=s/cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti, _, lastAuth := deviceIssuer(t)
			cfg := &Config{Providers: []ProviderConfig{{Name: "corp", Issuer: ti.srv.URL, ClientID: "jitssh", ClientSecret: "s/cret", ClientAuth: tc.auth,
				NoDevice: tc.noDevice, CAFile: ti.caFile, Scopes: []string{"openid"}, UserClaim: "preferred_username", GroupsClaim: "groups", Algorithms: []string{"RS256"}}}}
			rp, err := New(cfg, Options{Store: testStore(t)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = rp.StartDevice(ctx, "corp", "10.0.0.1:1")
			if tc.noDevice {
				wantSSOCode(t, err, CodeUnknownProvider)
				if ps := rp.Providers(ctx); ps[0].Device {
					t.Fatal("providers list the device flow with device: false")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := lastAuth.Load().(string); got != tc.want {
				t.Fatalf("device request authenticated %q, want %q", got, tc.want)
			}
		})
	}
	cfg, err := ParseConfig("sso.yaml", []byte("providers:\n  - name: corp\n    issuer: https://idp.example\n    client_id: jitssh\n    device: false\n"), nil)
	if err != nil || !cfg.Providers[0].NoDevice {
		t.Fatalf("device: false parsed to %+v, %v", cfg, err)
	}
	if _, err := ParseConfig("sso.yaml", []byte("providers:\n  - name: corp\n    issuer: https://idp.example\n    client_id: jitssh\n    device: maybe\n"), nil); err == nil || !strings.Contains(err.Error(), "sso.yaml:5") {
		t.Fatalf("device: maybe: %v", err)
	}
}

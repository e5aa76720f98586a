package sso

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestDevicePollingHonoursSlowDown runs a device flow against an issuer
// whose token endpoint says authorization_pending, then slow_down, then
// answers: jitd must ask it at its interval however often the client
// polls, pass slow_down on as a larger interval, and then log the person
// in.
func TestDevicePollingHonoursSlowDown(t *testing.T) {
	ti := newTestIssuer(t)
	now := time.Now()
	var tokenCalls atomic.Int32
	mux := ti.srv.Config.Handler.(*http.ServeMux)
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"` + ti.srv.URL + `/device","expires_in":60,"interval":1}`))
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if tokenCalls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"slow_down"}`))
			return
		}
		{
			idt := ti.sign(t, jose.RS256, ti.key, ti.kid, map[string]any{"iss": ti.srv.URL, "sub": "u-9", "aud": "jitssh",
				"exp": time.Now().Add(time.Hour).Unix(), "preferred_username": "dana", "groups": []string{"eng"}})
			_, _ = w.Write([]byte(`{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","id_token":"` + idt + `"}`))
		}
	})
	rp, _, _ := testRP(t, ti, now)
	rp.opts.Clock = time.Now
	ds, err := rp.StartDevice(context.Background(), "corp", "127.0.0.1:4000")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Interval != 1 || ds.UserCode != "ABCD-EFGH" {
		t.Fatalf("start %+v", ds)
	}
	deadline := time.Now().Add(30 * time.Second)
	var polls int
	var sawSlow bool
	for {
		id, pending, err := rp.PollDevice(context.Background(), ds.Flow)
		if err != nil {
			t.Fatal(err)
		}
		polls++
		if pending == 0 {
			if id.User != "dana" || id.RefreshToken != "rt" {
				t.Fatalf("identity %+v", id)
			}
			break
		}
		sawSlow = sawSlow || pending == 6
		if time.Now().After(deadline) {
			t.Fatal("device flow never finished")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !sawSlow {
		t.Fatal("slow_down was not passed on as interval 6")
	}
	// At 1s, then (slowed down to 6s) at 7s: two token calls, against
	// some seventy polls by the client.
	if got := tokenCalls.Load(); got != 2 || polls < 30 {
		t.Fatalf("%d token calls for %d polls, want 2", got, polls)
	}
	_, _, err = rp.PollDevice(context.Background(), ds.Flow)
	var se *Error
	if !errors.As(err, &se) || se.Code != CodeFlowUnknown {
		t.Fatalf("a spent flow polled again: %v", err)
	}
}

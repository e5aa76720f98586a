package sso

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
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

// handClock is a clock the test moves by hand.
type handClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *handClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *handClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// deviceRP is an RP on a test issuer whose device endpoint names
// interval and whose token endpoint calls answer(n) for its n-th call
// (n from 1), returning the error code it answers with.
func deviceRP(t *testing.T, interval int, answer func(n int32) string) (*RP, *handClock) {
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
	clock := &handClock{t: time.Now()}
	rp, _, _ := testRP(t, ti, clock.t)
	rp.opts.Clock = clock.now
	return rp, clock
}

// TestDeviceFlowLivesAfterSlowDown polls as jit does (waiting the
// interval each 202 names): after the provider's slow_down the flow must
// not be dropped as abandoned, since the client did exactly what it was
// told: its liveness counts in the new interval (at interval 2, the next
// poll comes 7 s later, past 3 x 2 s).
func TestDeviceFlowLivesAfterSlowDown(t *testing.T) {
	rp, clock := deviceRP(t, 2, func(n int32) string {
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

// TestDeviceFlowLivenessCountsFromAnswer: the provider takes 11 s (under
// the 15 s providerTimeout) to say authorization_pending at interval 5;
// the client, which waited for that answer, polls again 5 s after it and
// must not find its flow dropped for not polling.
func TestDeviceFlowLivenessCountsFromAnswer(t *testing.T) {
	var clock *handClock
	rp, c := deviceRP(t, 5, func(n int32) string {
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

// TestDeviceCapRefusesBeforeProvider: with maxDeviceFlows device flows
// live, a further StartDevice is refused busy before jitd asks the
// provider for a device code (maxDeviceFlows exists so that nobody can
// make jitd flood a provider), and a start the provider refuses gives its
// reserved place back.
func TestDeviceCapRefusesBeforeProvider(t *testing.T) {
	ti := newTestIssuer(t)
	var deviceCalls atomic.Int32
	var refuseAll atomic.Bool
	mux := ti.srv.Config.Handler.(*http.ServeMux)
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		deviceCalls.Add(1)
		if refuseAll.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"` + ti.srv.URL + `/device","expires_in":600,"interval":5}`))
	})
	rp, _, _ := testRP(t, ti, time.Now())
	ctx := context.Background()
	refuseAll.Store(true)
	for i := range MaxFlowsPerAddress + 1 {
		_, err := rp.StartDevice(ctx, "corp", "10.3.0.1:1")
		var se *Error
		if !errors.As(err, &se) || se.Code == CodeBusy {
			t.Fatalf("start %d refused by the provider: %v, want the provider's refusal (its reservation given back)", i+1, err)
		}
	}
	refuseAll.Store(false)
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

// TestDeviceFlowSurvivesProviderFailure: a token endpoint that fails in
// passing (its load balancer's 502, a 503 temporarily_unavailable, a
// dropped connection) is answered pending and the flow kept, so the
// person's approval is not lost: the next poll finds the flow pending and
// the one after logs in. A final refusal (access_denied) spends the flow.
func TestDeviceFlowSurvivesProviderFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  func(w http.ResponseWriter)
		final bool
	}{
		{name: "bad gateway", fail: func(w http.ResponseWriter) { http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway) }},
		{name: "temporarily unavailable", fail: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable"}`))
		}},
		{name: "connection dropped", fail: func(w http.ResponseWriter) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = c.Close()
			}
		}},
		{name: "access denied", final: true, fail: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"access_denied"}`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := newTestIssuer(t)
			var calls atomic.Int32
			mux := ti.srv.Config.Handler.(*http.ServeMux)
			mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"` + ti.srv.URL + `/device","expires_in":600,"interval":5}`))
			})
			mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					tc.fail(w)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":"authorization_pending"}`))
			})
			clock := &handClock{t: time.Now()}
			rp, _, _ := testRP(t, ti, clock.t)
			rp.opts.Clock = clock.now
			ctx := context.Background()
			ds, err := rp.StartDevice(ctx, "corp", "10.0.0.1:1")
			if err != nil {
				t.Fatal(err)
			}
			clock.add(5 * time.Second)
			_, pending, err := rp.PollDevice(ctx, ds.Flow)
			if tc.final {
				wantSSOCode(t, err, CodeAccessDenied)
				clock.add(5 * time.Second)
				_, _, err = rp.PollDevice(ctx, ds.Flow)
				wantSSOCode(t, err, CodeFlowUnknown)
				return
			}
			if err != nil || pending != 5 {
				t.Fatalf("poll during the failure: pending %d, %v; want pending 5", pending, err)
			}
			// The failure backs the next request off: polls go on
			// answered pending, and the provider is asked again.
			for i := 0; i < 4 && calls.Load() < 2; i++ {
				clock.add(5 * time.Second)
				if _, pending, err := rp.PollDevice(ctx, ds.Flow); err != nil || pending != 5 {
					t.Fatalf("poll %d after the failure: pending %d, %v; want the flow still pending", i+1, pending, err)
				}
			}
			if calls.Load() != 2 {
				t.Fatalf("%d token requests, want the provider asked again after the failure", calls.Load())
			}
		})
	}
}

// TestProviderRefusalCodes: a provider's refusal maps to the code the
// client acts on; one that did not answer in time is a failure that may
// pass (503 sso_provider_failed), not an expired device code, which would
// end jit's wait for the login.
func TestProviderRefusalCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&oauth2.RetrieveError{ErrorCode: "access_denied"}, CodeAccessDenied},
		{&oauth2.RetrieveError{ErrorCode: "expired_token"}, CodeExpired},
		{&oauth2.RetrieveError{ErrorCode: "invalid_grant"}, CodeAccessDenied},
		{&oauth2.RetrieveError{ErrorCode: "server_error"}, CodeProviderFailed},
		{fmt.Errorf("device token request: %w", context.DeadlineExceeded), CodeProviderFailed},
		{errors.New("connection refused"), CodeProviderFailed},
	} {
		if got := providerRefusal("corp", "device login", tc.err); got.Code != tc.want {
			t.Errorf("%v: code %s, want %s", tc.err, got.Code, tc.want)
		}
	}
}

// TestDevicePollOutlivesItsClient: a client that goes away while its
// claimed poll is at the provider does not leave the flow half-answered:
// the request and the writes after it finish on their own, so the poll
// answers pending (not a store failure on a cancelled context) and the
// next poll is due an interval later.
func TestDevicePollOutlivesItsClient(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var clock *handClock
	rp, c := deviceRP(t, 5, func(n int32) string {
		if n == 1 {
			// The client gives up while the provider answers, and the
			// answer comes after its transport has seen that.
			cancel()
			time.Sleep(200 * time.Millisecond)
		}
		return "authorization_pending"
	})
	clock = c
	ds, err := rp.StartDevice(context.Background(), "corp", "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	clock.add(5 * time.Second)
	if _, pending, err := rp.PollDevice(ctx, ds.Flow); err != nil || pending != 5 {
		t.Fatalf("poll whose client went away: pending %d, %v; want pending 5", pending, err)
	}
	clock.add(5 * time.Second)
	if _, pending, err := rp.PollDevice(context.Background(), ds.Flow); err != nil || pending != 5 {
		t.Fatalf("the next poll: pending %d, %v; want pending 5", pending, err)
	}
}

// TestDevicePollAtReplicaWithoutProvider: a poll that reaches a replica
// whose --sso-config lacks the flow's provider (behind or ahead of the
// others in a rollout) answers pending and keeps the flow, which the next
// poll, at a replica that has the provider, asks about.
func TestDevicePollAtReplicaWithoutProvider(t *testing.T) {
	var calls atomic.Int32
	rp, clock := deviceRP(t, 5, func(n int32) string { calls.Store(n); return "authorization_pending" })
	other := rp.providers[0].cfg
	other.Name = "other"
	lacking, err := New(&Config{Providers: []ProviderConfig{other}}, Options{Store: rp.opts.Store, Clock: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ds, err := rp.StartDevice(ctx, "corp", "10.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	clock.add(5 * time.Second)
	if _, pending, err := lacking.PollDevice(ctx, ds.Flow); err != nil || pending != 5 {
		t.Fatalf("poll at the replica without the provider: pending %d, %v; want pending 5", pending, err)
	}
	if _, pending, err := rp.PollDevice(ctx, ds.Flow); err != nil || pending != 5 || calls.Load() != 1 {
		t.Fatalf("poll at the replica with it: pending %d, %v, %d token requests; want pending 5 after one", pending, err, calls.Load())
	}
}

// TestDevicePollOfUnknownFlowNeedsNoWriter: a poll with a made-up flow id
// is refused from the read pool, without a write transaction, so that
// such polls cannot queue behind (or take) the store's one writer. Here
// another process holds SQLite's write lock; the refusal still comes.
func TestDevicePollOfUnknownFlowNeedsNoWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jitssh.db")
	store := openStore(t, path)
	rp, err := New(&Config{}, Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.ExecContext(context.Background(), "ROLLBACK") })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _, err = rp.PollDevice(ctx, "made-up-flow-id")
	wantSSOCode(t, err, CodeFlowUnknown)
}

package sso

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/internal/oidctest"
)

// replicaRPs returns one RP per store, as replicas of jitd on one database
// have, all for the real provider op (its confidential client).
func replicaRPs(t *testing.T, op *oidctest.Provider, stores ...*audit.Store) []*RP {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "sso.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `providers:
  - name: corp
    issuer: %s
    client_id: %s
    client_secret_file: %s
    client_auth: post
    ca_file: %s
    scopes: [openid, profile, groups, offline_access]
`, op.Issuer, oidctest.ConfidentialClientID, op.ClientSecretFile, op.CAFile), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	var out []*RP
	for _, s := range stores {
		rp, err := New(cfg, Options{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rp)
	}
	return out
}

func startProvider(t *testing.T) *oidctest.Provider {
	return oidctest.Start(t, oidctest.Options{Accounts: map[string]oidctest.Account{
		"erin": {Password: "pw-erin", Groups: []string{"eng-oncall"}},
		"sam":  {Password: "pw-sam", Groups: []string{"sec-audit"}},
	}})
}

// TestCodeFlowAcrossReplicas starts a browser login at one replica and
// finishes it at another, once; and checks that the stored flow holds
// none of its secrets in the clear and cannot be finished by someone who
// read the database (the row's key is the id's hash, and the sealed
// secrets open only with the id).
func TestCodeFlowAcrossReplicas(t *testing.T) {
	op := startProvider(t)
	ctx := context.Background()
	const redirect = "http://127.0.0.1:45678/callback"
	for _, eng := range storeOpeners {
		t.Run(eng.name, func(t *testing.T) {
			s1, another := eng.open(t)
			s2 := another()
			rps := replicaRPs(t, op, s1, s2)
			flow, authURL, _, err := rps[0].Start(ctx, "corp", redirect, "10.0.0.1:5000")
			if err != nil {
				t.Fatal(err)
			}
			checkSealed(t, s2, flow, authURL)
			back, err := op.CompleteLogin(authURL, "erin", "pw-erin")
			if err != nil {
				t.Fatal(err)
			}
			q := back.Query()
			// A database reader has the row's key, not the flow id.
			_, err = rps[1].Finish(ctx, flowHash(flow), q.Get("code"), q.Get("state"))
			wantSSOCode(t, err, CodeFlowUnknown)
			id, err := rps[1].Finish(ctx, flow, q.Get("code"), q.Get("state"))
			if err != nil {
				t.Fatalf("finish at the other replica: %v", err)
			}
			if id.User != "erin" || id.Provider != "corp" {
				t.Fatalf("identity %+v", id)
			}
			_, err = rps[0].Finish(ctx, flow, q.Get("code"), q.Get("state"))
			wantSSOCode(t, err, CodeFlowUnknown)
		})
	}
}

// checkSealed reads flow's row through store and checks that it holds
// neither the flow id nor the state, nonce or PKCE challenge of authURL
// in the clear, and that its secrets open with the id only.
func checkSealed(t *testing.T, store *audit.Store, flow, authURL string) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	var row audit.SSOFlow
	if err := store.Do(t.Context(), func(tx *audit.Tx) (err error) { row, err = tx.SSOFlow(flowHash(flow)); return err }); err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for _, secret := range []string{flow, q.Get("state"), q.Get("nonce")} {
		if secret == "" || bytes.Contains(row.Sealed, []byte(secret)) || row.Hash == secret || row.Addr == secret {
			t.Fatalf("the stored flow holds %q in the clear (or the URL lacks it)", secret)
		}
	}
	if _, err := Open(flow+"x", sealFlow, []byte(row.Hash), row.Sealed); err == nil {
		t.Fatal("the sealed secrets open with another flow id")
	}
	plain, err := Open(flow, sealFlow, []byte(row.Hash), row.Sealed)
	if err != nil || !bytes.Contains(plain, []byte(q.Get("state"))) {
		t.Fatalf("the sealed secrets do not open with the flow id: %v", err)
	}
}

// countingTransport counts the requests to one URL path: measuring the
// real provider's token endpoint, not standing in for it.
type countingTransport struct {
	next http.RoundTripper
	path string
	n    *atomic.Int32
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == c.path {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// TestDeviceFlowAcrossReplicas starts a device login at one replica and
// polls it from both, two pollers each, as fast as a client never
// should: the provider is asked at most once per interval in all (its
// token requests counted), the person's approval reaches exactly one
// poll, and every other poll then finds the flow spent.
func TestDeviceFlowAcrossReplicas(t *testing.T) {
	op := startProvider(t)
	ctx := context.Background()
	for _, eng := range storeOpeners {
		t.Run(eng.name, func(t *testing.T) {
			s1, another := eng.open(t)
			rps := replicaRPs(t, op, s1, another())
			var tokenRequests atomic.Int32
			for _, rp := range rps {
				d, err := rp.providers[0].get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				tu, _ := url.Parse(d.tokenEP)
				rp.providers[0].client.Transport = countingTransport{next: rp.providers[0].client.Transport, path: tu.Path, n: &tokenRequests}
			}
			started := time.Now()
			ds, err := rps[0].StartDevice(ctx, "corp", "10.0.0.1:1")
			if err != nil {
				t.Fatal(err)
			}
			ids, refusals := pollFromAll(t, rps, ds, func() {
				if err := op.ApproveDeviceAt(ds.VerificationURI, ds.UserCode, "sam", "pw-sam"); err != nil {
					t.Error(err)
				}
			})
			elapsed := time.Since(started)
			if len(ids) != 1 || ids[0].User != "sam" {
				t.Fatalf("identities %+v, want sam once", ids)
			}
			for _, err := range refusals {
				wantSSOCode(t, err, CodeFlowUnknown)
			}
			most := int32(elapsed/(time.Duration(ds.Interval)*time.Second)) + 1
			if got := tokenRequests.Load(); got < 1 || got > most {
				t.Fatalf("%d token requests in %s at interval %ds, want 1 to %d", got, elapsed, ds.Interval, most)
			}
			t.Logf("%s: %d token requests in %s (interval %ds)", eng.name, tokenRequests.Load(), elapsed.Round(time.Millisecond), ds.Interval)
		})
	}
}

// pollFromAll polls ds from two goroutines per RP every 50ms, calling
// approve once two intervals have passed, until each poller has its
// answer (bounded by two minutes). It returns the identities and the
// refusals the pollers got.
func pollFromAll(t *testing.T, rps []*RP, ds DeviceStart, approve func()) ([]Identity, []error) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	var mu sync.Mutex
	var ids []Identity
	var refusals []error
	var wg sync.WaitGroup
	for i := range 2 * len(rps) {
		rp := rps[i%len(rps)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id, pending, err := rp.PollDevice(ctx, ds.Flow)
				if err == nil && pending > 0 {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				if err != nil {
					refusals = append(refusals, err)
				} else {
					ids = append(ids, id)
				}
				mu.Unlock()
				return
			}
			mu.Lock()
			refusals = append(refusals, errors.New("still pending at the deadline"))
			mu.Unlock()
		}()
	}
	time.Sleep(2 * time.Duration(ds.Interval) * time.Second)
	approve()
	wg.Wait()
	return ids, refusals
}

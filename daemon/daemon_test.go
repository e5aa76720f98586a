package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/policy"
)

var testNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func initDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := Init(context.Background(), dir, ca.Ed25519, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInitNeverOverwrites(t *testing.T) {
	dir := initDir(t)
	l := Layout{Dir: dir}
	files := []string{
		filepath.Join(l.CADir(), "user_ca"), filepath.Join(l.CADir(), "host_ca"), filepath.Join(l.CADir(), "target_ca"),
		filepath.Join(l.TLSDir(), "tls.key"), filepath.Join(l.TLSDir(), "tls.crt"), l.BastionHostKey(), l.CheckpointKey(),
	}
	before := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("init did not create %s: %v", f, err)
		}
		before[f] = b
		if fi, _ := os.Stat(f); !strings.HasSuffix(f, ".crt") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}
	custom := []byte("# edited by the operator\n" + string(policy.Demo()))
	if err := os.WriteFile(l.PolicyFile(), custom, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Init(context.Background(), dir, ca.Ed25519, []string{"127.0.0.1"}, testNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created) != 0 {
		t.Errorf("second init created %v", res.Created)
	}
	for _, f := range files {
		if b, _ := os.ReadFile(f); !bytes.Equal(b, before[f]) {
			t.Errorf("second init changed %s", f)
		}
	}
	if b, _ := os.ReadFile(l.PolicyFile()); !bytes.Equal(b, custom) {
		t.Error("second init overwrote the policy")
	}
	var out bytes.Buffer
	res.Print(&out)
	for _, want := range []string{"user CA    SHA256:", "host CA    SHA256:", "target CA  SHA256:", "TLS        SHA256:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("init output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunRefusesUnsafeStart(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, l Layout)
		want   string
	}{
		{name: "readable CA key", damage: func(t *testing.T, l Layout) {
			if err := os.Chmod(filepath.Join(l.CADir(), "user_ca"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: "too open"},
		{name: "readable TLS key", damage: func(t *testing.T, l Layout) {
			if err := os.Chmod(filepath.Join(l.TLSDir(), "tls.key"), 0o640); err != nil {
				t.Fatal(err)
			}
		}, want: "too open"},
		{name: "missing CA", damage: func(t *testing.T, l Layout) {
			if err := os.Remove(filepath.Join(l.CADir(), "target_ca")); err != nil {
				t.Fatal(err)
			}
		}, want: "jitd init"},
		{name: "bad policy", damage: func(t *testing.T, l Layout) {
			if err := os.WriteFile(l.PolicyFile(), []byte("users:\n  alice: {groups: [dev], colour: blue}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "policy.yaml:2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := initDir(t)
			tc.damage(t, Layout{Dir: dir})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := Run(ctx, Config{Dir: dir, APIAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestPolicyReloadKeepsLastGood(t *testing.T) {
	dir := initDir(t)
	l := Layout{Dir: dir}
	store, err := audit.Open(l.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	ps, err := LoadPolicy(ctx, l.PolicyFile(), store)
	if err != nil {
		t.Fatal(err)
	}
	good := ps.Current()
	if err := os.WriteFile(l.PolicyFile(), []byte("hosts:\n  db1: {adress: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = ps.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "policy.yaml:2") {
		t.Fatalf("Reload of a bad file = %v, want an error naming line 2", err)
	}
	if ps.Current() != good {
		t.Fatal("a bad reload replaced the policy in force")
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	key := string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err := EnrolUser(ctx, dir, "zoe", []string{"dev"}, []string{key}, "test", testNow); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.PolicyFile(), policy.Demo(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ps.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if u, ok := ps.Current().UserByKey(signer.PublicKey()); !ok || u.Name != "zoe" {
		t.Fatalf("enrolled user not merged after reload: %+v %v", u, ok)
	}
	evs, err := store.Events(ctx, audit.EventFilter{Type: "admin.user.add"})
	if err != nil || len(evs) != 1 || evs[0].User != "zoe" {
		t.Fatalf("enrolment not audited: %+v %v", evs, err)
	}
}

func TestCheckpointsSignedAndVerified(t *testing.T) {
	dir := initDir(t)
	l := Layout{Dir: dir}
	store, err := audit.Open(l.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := appendEvent(ctx, store, audit.Event{Time: testNow, Type: "test", Code: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ca.LoadOrCreateHostKey(l.CheckpointKey(), ca.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if signed, err := store.SignCheckpoint(ctx, key, testNow); err != nil || !signed {
		t.Fatalf("checkpoint: signed %v, %v", signed, err)
	}
	if signed, err := store.SignCheckpoint(ctx, key, testNow); err != nil || signed {
		t.Fatalf("a second checkpoint at the same head: signed %v, %v", signed, err)
	}
	cps, err := store.Checkpoints(ctx)
	if err != nil || len(cps) != 1 || cps[0].Seq != 3 {
		t.Fatalf("checkpoints = %+v, %v; want one at seq 3", cps, err)
	}
	res, err := store.Verify(ctx, audit.VerifyOptions{CheckpointKey: key.PublicKey()})
	if err != nil || !res.OK {
		t.Fatalf("verify with the daemon's key = %+v, %v", res, err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	res, err = store.Verify(ctx, audit.VerifyOptions{CheckpointKey: otherSigner.PublicKey()})
	if err != nil || res.OK || res.FirstBad != 3 {
		t.Fatalf("verify with another key = %+v, %v; want a failure at seq 3", res, err)
	}
}

// TestServeEndToEnd starts the daemon in-process and asks the API for its
// CA keys and health, then shuts it down through the context.
func TestServeEndToEnd(t *testing.T) {
	dir := initDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Dir: dir, APIAddr: "127.0.0.1:0", BastionAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(a Addrs) { ready <- a }})
	}()
	var addrs Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not become ready")
	}
	c, err := api.NewClient("https://"+addrs.API, addrs.TLSFingerprint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := c.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ca.LoadKeys(Layout{Dir: dir}.CADir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.UserCA, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(keys.User.PublicKey())))) || info.Bastion != addrs.Bastion {
		t.Fatalf("CA info %+v does not match the data directory", info)
	}
	if _, err := api.NewClient("https://"+addrs.API, "SHA256:"+strings.Repeat("A", 43), ""); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addrs.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"# TYPE jitssh_audit_events_total counter",
		`jitssh_audit_events_total{type="host_cert.issued"} 1`,
		"jitssh_bastion_live_sessions 0",
		`jitssh_webhook_deliveries_total{result="failed"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	wrong, _ := api.NewClient("https://"+addrs.API, "SHA256:"+strings.Repeat("A", 43), "")
	if err := wrong.Health(ctx); err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Fatalf("a client pinning another fingerprint connected: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after shutdown", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not shut down")
	}
}

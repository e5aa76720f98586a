package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/testkit"
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

func TestNewRefusesUnsafeStart(t *testing.T) {
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
			if err := os.WriteFile(l.PolicyFile(), []byte(testkit.BadPolicy), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "policy.yaml:2"},
		{name: "missing checkpoint key", damage: func(t *testing.T, l Layout) {
			if err := os.Remove(l.CheckpointKey()); err != nil {
				t.Fatal(err)
			}
		}, want: "checkpoint key %s is missing (run jitd init, or jitd serve --init)"},
		{name: "readable checkpoint key", damage: func(t *testing.T, l Layout) {
			if err := os.Chmod(l.CheckpointKey(), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: "too open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := initDir(t)
			l := Layout{Dir: dir}
			tc.damage(t, l)
			want := strings.ReplaceAll(tc.want, "%s", l.CheckpointKey())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d, err := New(ctx, Config{Dir: dir, APIAddr: "127.0.0.1:0", BastionAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				d.Close()
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("New = %v, want an error containing %q", err, want)
			}
			if _, err := os.Stat(l.CheckpointKey()); tc.name == "missing checkpoint key" && err == nil {
				t.Error("New created the missing checkpoint key")
			}
		})
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
		if err := store.Append(ctx, audit.Event{Time: testNow, Type: "test", Code: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ca.LoadSigner(l.CheckpointKey())
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
	res, err = store.Verify(ctx, audit.VerifyOptions{CheckpointKey: testkit.Signer(t).PublicKey()})
	if err != nil || res.OK || res.FirstBad != 3 {
		t.Fatalf("verify with another key = %+v, %v; want a failure at seq 3", res, err)
	}
}

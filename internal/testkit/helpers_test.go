package testkit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/policy"
)

// fakeTB records a helper's Fatalf instead of failing the test, and ends
// the helper's goroutine as testing.T does.
type fakeTB struct {
	testing.TB
	fatal string
}

func (*fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs fn with a fakeTB on its own goroutine and returns the message
// it failed with, "" if it did not fail.
func fails(fn func(tb testing.TB)) string {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.fatal
}

func TestEdit(t *testing.T) {
	tests := []struct {
		name     string
		edits    []string
		want     string
		wantFail string
	}{
		{name: "no edits", want: "a b a"},
		{name: "first place only", edits: []string{"a", "c"}, want: "c b a"},
		{name: "in turn", edits: []string{"a", "c", "c b", "d"}, want: "d a"},
		{name: "to nothing", edits: []string{"b ", ""}, want: "a a"},
		{name: "missing old", edits: []string{"x", "y"}, wantFail: `"x" is not in the text`},
		{name: "old gone by its turn", edits: []string{"b", "c", "b", "d"}, wantFail: `"b" is not in the text`},
		{name: "odd count", edits: []string{"a"}, wantFail: "1 edit strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			msg := fails(func(tb testing.TB) { got = Edit(tb, "a b a", tt.edits...) })
			if tt.wantFail != "" {
				if !strings.Contains(msg, tt.wantFail) {
					t.Fatalf("failure %q, want one containing %q", msg, tt.wantFail)
				}
				return
			}
			if msg != "" || got != tt.want {
				t.Fatalf("Edit = %q (failure %q), want %q", got, msg, tt.want)
			}
		})
	}
}

// TestBadPolicy pins what the tests that use BadPolicy rely on.
func TestBadPolicy(t *testing.T) {
	_, err := policy.Parse("policy.yaml", []byte(BadPolicy))
	if err == nil || !strings.Contains(err.Error(), "policy.yaml:2") || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("Parse(BadPolicy) = %v, want an error naming line 2 and colour", err)
	}
}

func TestWaitFor(t *testing.T) {
	tests := []struct {
		name     string
		trueAt   int // call on which cond first holds; 0: never
		wantFail bool
	}{
		{name: "holds at once", trueAt: 1},
		{name: "holds later", trueAt: 5},
		{name: "never holds", wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			cond := func() bool { calls++; return tt.trueAt > 0 && calls >= tt.trueAt }
			msg := fails(func(tb testing.TB) { WaitFor(tb, 50*time.Millisecond, "the thing", cond) })
			if tt.wantFail {
				if !strings.Contains(msg, "waiting for the thing") {
					t.Fatalf("failure %q, want one naming what it waited for", msg)
				}
				return
			}
			if msg != "" || calls != tt.trueAt {
				t.Fatalf("failure %q after %d calls, want none after %d", msg, calls, tt.trueAt)
			}
		})
	}
}

func TestSignerPEM(t *testing.T) {
	s, b := SignerPEM(t, "alice@test")
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "OPENSSH PRIVATE KEY" {
		t.Fatalf("not an OpenSSH PEM block: %q", b)
	}
	if !bytes.Contains(block.Bytes, []byte("alice@test")) {
		t.Error("the key does not carry its comment")
	}
	parsed, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if !bytes.Equal(parsed.PublicKey().Marshal(), s.PublicKey().Marshal()) {
		t.Fatal("the PEM holds another key than the signer")
	}
	if other, _ := SignerPEM(t, "alice@test"); bytes.Equal(other.PublicKey().Marshal(), s.PublicKey().Marshal()) {
		t.Fatal("two calls returned the same key")
	}
}

func TestPublicKeys(t *testing.T) {
	tests := []struct {
		name     string
		key      ssh.PublicKey
		wantType string
		wantBits int
	}{
		{name: "rsa 1024", key: RSAPublic(t, 1024), wantType: ssh.KeyAlgoRSA, wantBits: 1024},
		{name: "ecdsa p256", key: ECDSAPublic(t, elliptic.P256()), wantType: ssh.KeyAlgoECDSA256, wantBits: 256},
		{name: "ecdsa p384", key: ECDSAPublic(t, elliptic.P384()), wantType: ssh.KeyAlgoECDSA384, wantBits: 384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.key.Type() != tt.wantType {
				t.Fatalf("type %q, want %q", tt.key.Type(), tt.wantType)
			}
			var bits int
			switch k := tt.key.(ssh.CryptoPublicKey).CryptoPublicKey().(type) {
			case *rsa.PublicKey:
				bits = k.N.BitLen()
			case *ecdsa.PublicKey:
				bits = k.Curve.Params().BitSize
			}
			if bits != tt.wantBits {
				t.Fatalf("%d bits, want %d", bits, tt.wantBits)
			}
		})
	}
}

func TestProcessCPU(t *testing.T) {
	before := ProcessCPU(t)
	for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
		_ = bytes.Repeat([]byte("x"), 1024) // burn CPU, not sleep
	}
	if after := ProcessCPU(t); after <= before || before <= 0 {
		t.Fatalf("CPU %v then %v, want a positive, growing time", before, after)
	}
}

func TestPublicKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host_key.pub")
	k := PublicKeyFile(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	read, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil || !bytes.Equal(read.Marshal(), k.Marshal()) || k.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("file holds %v (%v), want the returned ed25519 key", read, err)
	}
	if msg := fails(func(tb testing.TB) { PublicKeyFile(tb, filepath.Join(path, "under-a-file")) }); !strings.Contains(msg, "write public key") {
		t.Fatalf("failure %q, want one on the write", msg)
	}
}

func TestTree(t *testing.T) {
	tests := []struct {
		name   string
		change func(root string) error
		want   []string
	}{
		{name: "untouched", change: func(string) error { return nil }},
		{name: "rewritten", change: func(root string) error { return os.WriteFile(filepath.Join(root, "a"), []byte("2"), 0o644) }, want: []string{"/a: changed"}},
		{name: "chmodded", change: func(root string) error { return os.Chmod(filepath.Join(root, "a"), 0o600) }, want: []string{"/a: changed"}},
		{name: "added and removed", change: func(root string) error {
			if err := os.Remove(filepath.Join(root, "d", "b")); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(root, "c"), nil, 0o644)
		}, want: []string{"/c: appeared", "/d/b: gone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "a"), []byte("1"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "d", "b"), []byte("1"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := Tree(t, root)
			if err := tt.change(root); err != nil {
				t.Fatal(err)
			}
			if got := TreeDiff(before, Tree(t, root)); strings.Join(got, ";") != strings.Join(tt.want, ";") {
				t.Fatalf("TreeDiff = %q, want %q", got, tt.want)
			}
		})
	}
	if msg := fails(func(tb testing.TB) { Tree(tb, filepath.Join(t.TempDir(), "missing")) }); !strings.Contains(msg, "walk") {
		t.Fatalf("failure %q, want one naming the walk", msg)
	}
}

package ca

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestParseAlgorithm(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Algorithm
		wantErr string
	}{
		{name: "empty is the default", in: "", want: Ed25519},
		{name: "ed25519", in: "ed25519", want: Ed25519},
		{name: "ecdsa p256", in: "ecdsa-p256", want: ECDSAP256},
		{name: "ecdsa p384", in: "ecdsa-p384", want: ECDSAP384},
		{name: "rsa 3072", in: "rsa-3072", want: RSA3072},
		{name: "rsa 4096", in: "rsa-4096", want: RSA4096},
		{name: "rsa 2048 not offered", in: "rsa-2048", wantErr: `unknown key algorithm "rsa-2048" (want one of ed25519, ecdsa-p256`},
		{name: "case matters", in: "Ed25519", wantErr: `unknown key algorithm "Ed25519"`},
		{name: "dsa", in: "dsa", wantErr: `unknown key algorithm "dsa"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAlgorithm(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseAlgorithm(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAlgorithm(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func TestInitKeysNeverOverwrites(t *testing.T) {
	tests := []struct {
		name     string
		alg      Algorithm
		wantType string
	}{
		{name: "ed25519", alg: Ed25519, wantType: ssh.KeyAlgoED25519},
		{name: "ecdsa p256", alg: ECDSAP256, wantType: ssh.KeyAlgoECDSA256},
		{name: "ecdsa p384", alg: ECDSAP384, wantType: ssh.KeyAlgoECDSA384},
		{name: "rsa 3072", alg: RSA3072, wantType: ssh.KeyAlgoRSA},
		{name: "rsa 4096", alg: RSA4096, wantType: ssh.KeyAlgoRSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "ca")
			keys, created, err := InitKeys(dir, tt.alg)
			if err != nil {
				t.Fatalf("InitKeys: %v", err)
			}
			var wantCreated []string
			for _, n := range []string{"user_ca", "host_ca", "target_ca"} {
				wantCreated = append(wantCreated, filepath.Join(dir, n), filepath.Join(dir, n+".pub"))
			}
			if !slices.Equal(created, wantCreated) {
				t.Fatalf("created %q, want %q", created, wantCreated)
			}
			fi, err := os.Stat(dir)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode %v, %v; want 0700", fi.Mode(), err)
			}
			for _, n := range []string{"user_ca", "host_ca", "target_ca"} {
				for suffix, mode := range map[string]os.FileMode{"": 0o600, ".pub": 0o644} {
					fi, err := os.Stat(filepath.Join(dir, n+suffix))
					if err != nil || fi.Mode().Perm() != mode {
						t.Fatalf("%s%s mode %v, %v; want %#o", n, suffix, fi.Mode(), err, mode)
					}
				}
			}
			pub, err := os.ReadFile(filepath.Join(dir, "user_ca.pub"))
			if err != nil || !strings.HasSuffix(string(pub), " jitssh user CA\n") {
				t.Fatalf("user_ca.pub = %q, %v; want comment \"jitssh user CA\"", pub, err)
			}
			signers := []ssh.Signer{keys.User, keys.Host, keys.Target}
			for i, s := range signers {
				if s.PublicKey().Type() != tt.wantType {
					t.Fatalf("key %d type %q, want %q", i, s.PublicKey().Type(), tt.wantType)
				}
				for _, other := range signers[i+1:] {
					if bytes.Equal(s.PublicKey().Marshal(), other.PublicKey().Marshal()) {
						t.Fatal("two CA keys are the same key")
					}
				}
			}

			before := readFiles(t, dir)
			// Another algorithm on the second call changes nothing either.
			again, created, err := InitKeys(dir, RSA3072)
			if err != nil {
				t.Fatalf("second InitKeys: %v", err)
			}
			if len(created) != 0 {
				t.Fatalf("second InitKeys created %q", created)
			}
			after := readFiles(t, dir)
			if len(after) != len(before) {
				t.Fatalf("files changed from %d to %d", len(before), len(after))
			}
			for name, b := range before {
				if !bytes.Equal(b, after[name]) {
					t.Fatalf("%s changed on the second InitKeys", name)
				}
			}
			loaded, err := LoadKeys(dir)
			if err != nil {
				t.Fatalf("LoadKeys: %v", err)
			}
			for i, pair := range [][3]ssh.Signer{{keys.User, again.User, loaded.User}, {keys.Host, again.Host, loaded.Host}, {keys.Target, again.Target, loaded.Target}} {
				for _, s := range pair[1:] {
					if !bytes.Equal(s.PublicKey().Marshal(), pair[0].PublicKey().Marshal()) {
						t.Fatalf("key %d differs after reload", i)
					}
				}
			}
		})
	}
}

func TestInitKeysRewritesMissingPub(t *testing.T) {
	dir := t.TempDir()
	keys, _, err := InitKeys(dir, Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "host_ca.pub")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeys(dir); err == nil || !strings.Contains(err.Error(), "host_ca.pub") {
		t.Fatalf("LoadKeys without host_ca.pub: %v, want an error naming it", err)
	}
	_, created, err := InitKeys(dir, Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "host_ca.pub")}; !slices.Equal(created, want) {
		t.Fatalf("created %q, want %q", created, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, "host_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if want := PublicKeyLine(keys.Host.PublicKey(), "jitssh host CA") + "\n"; string(b) != want {
		t.Fatalf("host_ca.pub = %q, want %q", b, want)
	}
}

func TestLoadKeysRefuses(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantErr string // contains; DIR is replaced by the directory
	}{
		{name: "mode 0644", damage: chmod("user_ca", 0o644), wantErr: "DIR/user_ca: permissions 0644 are too open; want 0600"},
		{name: "mode 0640", damage: chmod("host_ca", 0o640), wantErr: "DIR/host_ca: permissions 0640 are too open; want 0600"},
		{name: "mode 0604", damage: chmod("target_ca", 0o604), wantErr: "DIR/target_ca: permissions 0604 are too open; want 0600"},
		{name: "mode 0620 group writable", damage: chmod("user_ca", 0o620), wantErr: "permissions 0620 are too open"},
		{name: "private key missing", damage: remove("target_ca"), wantErr: "DIR/target_ca: no such file"},
		{name: "public key missing", damage: remove("user_ca.pub"), wantErr: "DIR/user_ca.pub: no such file"},
		{name: "public key of another key", damage: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "host_ca.pub"), filepath.Join(dir, "user_ca.pub"))
		}, wantErr: "DIR/user_ca.pub: SHA256:"},
		{name: "garbage private key", damage: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "user_ca"), []byte("not a key"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "DIR/user_ca: parse private key"},
		{name: "encrypted private key", damage: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "user_ca"), []byte(privatePEM(t, "secret")), 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "DIR/user_ca: key is encrypted"},
		{name: "directory instead of key", damage: func(t *testing.T, dir string) {
			remove("host_ca")(t, dir)
			if err := os.Mkdir(filepath.Join(dir, "host_ca"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "DIR/host_ca: not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := InitKeys(dir, Ed25519); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir)
			_, err := LoadKeys(dir)
			want := strings.ReplaceAll(tt.wantErr, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("LoadKeys error %v, want it to contain %q", err, want)
			}
		})
	}
}

func TestInitKeysRefusesOrphanPub(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := InitKeys(dir, Ed25519); err != nil {
		t.Fatal(err)
	}
	remove("user_ca")(t, dir)
	_, _, err := InitKeys(dir, Ed25519)
	if err == nil || !strings.Contains(err.Error(), "private key missing but") {
		t.Fatalf("InitKeys with only user_ca.pub: %v, want refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "user_ca")); err == nil {
		t.Fatal("InitKeys wrote a new user_ca beside the old user_ca.pub")
	}
}

func TestInitKeysRefusesOpenPermissions(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := InitKeys(dir, Ed25519); err != nil {
		t.Fatal(err)
	}
	chmod("user_ca", 0o644)(t, dir)
	if _, _, err := InitKeys(dir, Ed25519); err == nil || !strings.Contains(err.Error(), "permissions 0644 are too open") {
		t.Fatalf("InitKeys over a 0644 key: %v, want refusal", err)
	}
}

func TestLoadOrCreateHostKey(t *testing.T) {
	tests := []struct {
		name     string
		alg      Algorithm
		wantAlgs []string // for MultiAlgorithmSigner; nil: not checked
	}{
		{name: "ed25519", alg: Ed25519},
		{name: "ecdsa p256", alg: ECDSAP256},
		{name: "rsa signs with sha-2 only", alg: RSA3072, wantAlgs: []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bastion", "ssh_host_key")
			s1, err := LoadOrCreateHostKey(path, tt.alg)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := LoadOrCreateHostKey(path, Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
				t.Fatal("host key changed on the second call")
			}
			if tt.wantAlgs != nil {
				m, ok := s2.(ssh.MultiAlgorithmSigner)
				if !ok || !slices.Equal(m.Algorithms(), tt.wantAlgs) {
					t.Fatalf("signer algorithms %v, want %v", m, tt.wantAlgs)
				}
			}
			chmod(filepath.Base(path), 0o640)(t, filepath.Dir(path))
			if _, err := LoadOrCreateHostKey(path, tt.alg); err == nil || !strings.Contains(err.Error(), "permissions 0640 are too open; want 0600") {
				t.Fatalf("LoadOrCreateHostKey over a 0640 key: %v", err)
			}
		})
	}
	if _, err := LoadOrCreateHostKey(filepath.Join(t.TempDir(), "k"), "rsa-1024"); err == nil {
		t.Fatal("LoadOrCreateHostKey accepted algorithm rsa-1024")
	}
}

func chmod(name string, mode os.FileMode) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func remove(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInitKeysConcurrent: callers racing on an empty directory all end up
// with the same keys, and every file is created exactly once.
func TestInitKeysConcurrent(t *testing.T) {
	dir := t.TempDir()
	const callers = 8
	type result struct {
		keys    *Keys
		created []string
		err     error
	}
	results := make(chan result, callers)
	for range callers {
		go func() {
			k, c, err := InitKeys(dir, Ed25519)
			results <- result{k, c, err}
		}()
	}
	var first *Keys
	createdTotal := 0
	for range callers {
		r := <-results
		if r.err != nil {
			t.Fatalf("InitKeys: %v", r.err)
		}
		createdTotal += len(r.created)
		if first == nil {
			first = r.keys
			continue
		}
		if !bytes.Equal(first.User.PublicKey().Marshal(), r.keys.User.PublicKey().Marshal()) ||
			!bytes.Equal(first.Target.PublicKey().Marshal(), r.keys.Target.PublicKey().Marshal()) {
			t.Fatal("concurrent InitKeys callers got different keys")
		}
	}
	if createdTotal != 6 {
		t.Fatalf("%d files reported created, want 6", createdTotal)
	}
	if _, err := LoadKeys(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 6 {
		t.Fatalf("%d entries in dir (%v), want 6 and no temporary files", len(entries), err)
	}
}

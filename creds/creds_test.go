package creds

import (
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/jitssh/jitssh/internal/testkit"
)

// testCert signs a user certificate for login@host valid until validBefore.
func testCert(t *testing.T, pub ssh.PublicKey, login, host string, validBefore time.Time) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{
		Key: pub, Serial: 7, CertType: ssh.UserCert, KeyId: "jit:req_x:alice",
		ValidPrincipals: []string{login + "@" + host},
		ValidAfter:      uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(validBefore.Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := c.SignCert(rand.Reader, testkit.Signer(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		name                  string
		jitHome, xdgConfig    string
		xdgState, home        string
		wantConfig, wantState string
	}{
		{name: "JIT_HOME wins", jitHome: "/j", xdgConfig: "/c", xdgState: "/s", home: "/h", wantConfig: "/j", wantState: "/j/state"},
		{name: "XDG directories", xdgConfig: "/c", xdgState: "/s", home: "/h", wantConfig: "/c/jit", wantState: "/s/jit"},
		{name: "XDG defaults under HOME", home: "/h", wantConfig: "/h/.config/jit", wantState: "/h/.local/state/jit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("JIT_HOME", tc.jitHome)
			t.Setenv("XDG_CONFIG_HOME", tc.xdgConfig)
			t.Setenv("XDG_STATE_HOME", tc.xdgState)
			t.Setenv("HOME", tc.home)
			d, err := DefaultDir()
			if err != nil {
				t.Fatal(err)
			}
			if d.Config != tc.wantConfig || d.State != tc.wantState {
				t.Errorf("DefaultDir() = %+v, want config %s, state %s", d, tc.wantConfig, tc.wantState)
			}
		})
	}
}

func TestConfigRoundTrip(t *testing.T) {
	d := Dir{Config: filepath.Join(t.TempDir(), "cfg"), State: t.TempDir()}
	if _, err := d.LoadConfig(); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("LoadConfig before login: %v, want ErrNotLoggedIn", err)
	}
	want := Config{CA: "https://127.0.0.1:7443", Fingerprint: "SHA256:x", User: "alice", Token: "secret", TokenExpires: time.Unix(1700000000, 0).UTC()}
	if err := d.SaveConfig(want); err != nil {
		t.Fatal(err)
	}
	got, err := d.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("LoadConfig() = %+v, want %+v", got, want)
	}
	fi, err := os.Stat(filepath.Join(d.Config, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %04o, want 0600: it holds the token", fi.Mode().Perm())
	}
}

func TestSaveGrantWritesKeysOpenSSHLoads(t *testing.T) {
	d := Dir{Config: t.TempDir(), State: filepath.Join(t.TempDir(), "state")}
	priv, signer, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert := testCert(t, signer.PublicKey(), "root", "db1", now.Add(10*time.Minute))
	g, err := d.SaveGrant("root", "db1", priv, cert)
	if err != nil {
		t.Fatal(err)
	}
	if g.CertPath != g.KeyPath+"-cert.pub" || g.KeyPath != d.KeyPath("root", "db1") {
		t.Errorf("grant paths %s, %s; want the key at KeyPath and the certificate beside it", g.KeyPath, g.CertPath)
	}
	for _, f := range []string{g.KeyPath, g.KeyPath + ".pub", g.CertPath} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}
	b, err := os.ReadFile(g.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := ssh.ParsePrivateKey(b) // what ssh -i needs: a PEM-armoured OpenSSH key
	if err != nil {
		t.Fatalf("stored private key does not parse: %v", err)
	}
	if string(loaded.PublicKey().Marshal()) != string(signer.PublicKey().Marshal()) {
		t.Error("stored private key is not the certified key")
	}

	// A second grant, already expired, sorts first; Find skips it.
	priv2, signer2, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SaveGrant("deploy", "web1", priv2, testCert(t, signer2.PublicKey(), "deploy", "web1", now.Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	gs, err := d.Grants()
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].Login != "deploy" || gs[1].Host != "db1" {
		t.Fatalf("Grants() = %+v, want deploy@web1 then root@db1", gs)
	}
	tests := []struct {
		name, login, host string
		at                time.Time
		want              bool
	}{
		{name: "live grant", login: "root", host: "db1", at: now, want: true},
		{name: "live grant past its end", login: "root", host: "db1", at: now.Add(11 * time.Minute), want: false},
		{name: "expired grant", login: "deploy", host: "web1", at: now, want: false},
		{name: "other host", login: "root", host: "db2", at: now, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := d.Find(tc.login, tc.host, tc.at); ok != tc.want {
				t.Errorf("Find(%s@%s) = %v, want %v", tc.login, tc.host, ok, tc.want)
			}
		})
	}
}

func TestParseAgentMode(t *testing.T) {
	tests := []struct {
		in      string
		want    AgentMode
		wantErr bool
	}{
		{in: "auto", want: AgentAuto},
		{in: "yes", want: AgentYes},
		{in: "no", want: AgentNo},
		{in: "", wantErr: true},
		{in: "always", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseAgentMode(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseAgentMode(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestAddToAgentLifetime(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	keyring := &recordingAgent{Agent: agent.NewKeyring(), added: make(chan agent.AddedKey, 4)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(keyring, c)
			}()
		}
	}()

	now := time.Now()
	tests := []struct {
		name        string
		validBefore time.Time
		wantErr     bool
		wantKeys    int
		wantLife    uint32
	}{
		{name: "expired certificate refused", validBefore: now.Add(-time.Second), wantErr: true, wantKeys: 0},
		{name: "live certificate added for its remaining validity", validBefore: now.Add(5 * time.Minute), wantKeys: 1, wantLife: 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			priv, signer, err := NewKey()
			if err != nil {
				t.Fatal(err)
			}
			err = AddToAgent(sock, priv, testCert(t, signer.PublicKey(), "root", "db1", tc.validBefore), now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("AddToAgent: %v, want error %v", err, tc.wantErr)
			}
			keys, err := keyring.List()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != tc.wantKeys {
				t.Errorf("agent holds %d keys, want %d", len(keys), tc.wantKeys)
			}
			if tc.wantErr {
				return
			}
			select {
			case k := <-keyring.added:
				// validBefore is in whole seconds, so up to one second less.
				if k.LifetimeSecs > tc.wantLife || k.LifetimeSecs < tc.wantLife-1 {
					t.Errorf("LifetimeSecs = %d, want about %d", k.LifetimeSecs, tc.wantLife)
				}
				if k.Certificate == nil {
					t.Error("added without the certificate")
				}
			default:
				t.Error("the agent saw no Add")
			}
		})
	}
}

// recordingAgent is a keyring that also reports what it was asked to add.
type recordingAgent struct {
	agent.Agent
	added chan agent.AddedKey
}

func (a *recordingAgent) Add(k agent.AddedKey) error {
	a.added <- k
	return a.Agent.Add(k)
}

func TestSaveExternalGrantLinksTheKey(t *testing.T) {
	d := Dir{Config: t.TempDir(), State: filepath.Join(t.TempDir(), "state")}
	// An earlier fresh-key grant for the same LOGIN@HOST is replaced.
	priv, signer, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SaveGrant("root", "db1", priv, testCert(t, signer.PublicKey(), "root", "db1", time.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}

	ownKey := filepath.Join(t.TempDir(), "id_sk")
	if err := os.WriteFile(ownKey, []byte("key handle"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, ownSigner, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert := testCert(t, ownSigner.PublicKey(), "root", "db1", time.Now().Add(time.Minute))
	g, err := d.SaveExternalGrant("root", "db1", ownKey, cert)
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(g.KeyPath); err != nil || target != ownKey {
		t.Errorf("KeyPath links to %q (%v), want %s", target, err, ownKey)
	}
	if _, err := os.Lstat(g.KeyPath + ".pub"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the earlier grant's public key is still there: %v", err)
	}
	if _, err := os.Stat(ownKey + "-cert.pub"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a certificate was written beside the user's own key: %v", err)
	}
	got, ok := d.Find("root", "db1", time.Now())
	if !ok || string(got.Cert.Key.Marshal()) != string(ownSigner.PublicKey().Marshal()) {
		t.Errorf("Find returns %+v, %v; want the certificate of the external key", got, ok)
	}
}

func TestSaveKnownHostsReplaces(t *testing.T) {
	d := Dir{Config: t.TempDir(), State: t.TempDir()}
	for _, content := range []string{"@cert-authority a key1\n", "@cert-authority a key2\n"} {
		path, err := d.SaveKnownHosts(content)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("known_hosts holds %q, want %q", got, content)
		}
	}
}

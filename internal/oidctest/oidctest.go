// Package oidctest runs a real, independent OpenID provider for tests:
// panva's oidc-provider (OpenID Certified, from npm, pinned in
// provider/package-lock.json and installed by `make deps`) under node, on
// 127.0.0.1 over HTTPS with a throwaway CA, with the accounts, groups and
// clients of the test. Helpers drive the provider's own login, consent and
// device pages with plain HTTP, as a person at a browser would.
package oidctest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// The clients every provider has. Both are registered as native
// applications with the loopback redirect URIs http://127.0.0.1/callback
// and http://[::1]/callback, which the provider matches on any port (RFC
// 8252 §7.3), and both may use the code (PKCE S256), refresh and device
// grants.
const (
	// PublicClientID has no secret; PKCE is required.
	PublicClientID = "jitssh-public"
	// ConfidentialClientID authenticates with Provider.ClientSecret in
	// the form body (client_secret_post) at the token and device
	// endpoints. Note that x/oauth2's DeviceAuth sends no client
	// authentication of its own: pass
	// oauth2.SetAuthURLParam("client_secret", secret).
	ConfidentialClientID = "jitssh"
	// WebClientID is a web application authenticating as
	// ConfidentialClientID does (the same secret), with
	// Options.RedirectURIs as its redirect URIs, and the code and refresh
	// grants.
	WebClientID = "jitssh-web"
)

// Account is one user at the provider. The user name is its key in
// Options.Accounts; it is the subject and, unless Username is set, the
// preferred_username claim.
type Account struct {
	Password string   `json:"password"`
	Groups   []string `json:"groups"`
	// Username is the preferred_username claim when set (a rename at the
	// provider keeps the subject).
	Username string `json:"username,omitempty"`
	Email    string `json:"email,omitempty"`
	Disabled bool   `json:"disabled,omitempty"`
}

// Options are what a test gives Start.
type Options struct {
	// Accounts by user name.
	Accounts map[string]Account
	// IDTokenTTL is the lifetime of ID and access tokens (default 1h,
	// whole seconds).
	IDTokenTTL time.Duration
	// DeviceCodeTTL is the lifetime of a device code (default 10m).
	DeviceCodeTTL time.Duration
	// RedirectURIs are the redirect URIs of the web client
	// WebClientID, matched exactly: the web console's
	// https://NAME:PORT/console/sso/callback. oidc-provider refuses an
	// https redirect on 127.0.0.1 for a native client, so the console's
	// callback cannot be registered beside the loopback ones.
	RedirectURIs []string
}

// Provider is a running oidc-provider. Its methods may be called from
// several goroutines.
type Provider struct {
	// Issuer is https://127.0.0.1:PORT; discovery is at
	// Issuer/.well-known/openid-configuration.
	Issuer string
	// CAFile is the PEM of the CA that signed the provider's TLS
	// certificate: a relying party's ca_file.
	CAFile string
	// CertFile is the PEM of the provider's own TLS certificate, for a
	// browser told to trust exactly it (browsertest.Options.TrustCertPEM).
	CertFile string
	// CAPool holds that CA.
	CAPool *x509.CertPool
	// ClientSecret is ConfidentialClientID's secret; ClientSecretFile
	// holds it (a relying party's client_secret_file).
	ClientSecret     string
	ClientSecretFile string
	// DeviceURI is the page where a user enters a device code.
	DeviceURI string

	accountsFile string
	mu           sync.Mutex
	accounts     map[string]Account
}

// providerDir is the folder with server.mjs and node_modules, found from
// this source file so that tests of any package can start the provider.
func providerDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "provider")
}

// Start runs a provider for the test and stops it in t.Cleanup. Without
// node or the npm modules the test is skipped, or fails when CI=true.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	dir := providerDir()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json"))
	}
	if err != nil {
		msg := fmt.Sprintf("oidctest needs node and the provider's npm modules in %s (run `make deps`): %v", dir, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	tmp := t.TempDir()
	p := &Provider{accountsFile: filepath.Join(tmp, "accounts.json"), accounts: map[string]Account{}}
	for name, a := range opts.Accounts {
		p.accounts[name] = a
	}
	if err := p.writeAccounts(); err != nil {
		t.Fatal(err)
	}
	p.CAFile, p.CAPool = writeTLS(t, tmp)
	p.CertFile = filepath.Join(tmp, "cert.pem")
	p.ClientSecret = randomHex(t, 24)
	p.ClientSecretFile = filepath.Join(tmp, "client_secret")
	if err := os.WriteFile(p.ClientSecretFile, []byte(p.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(tmp, "config.json")
	if err := writeJSON(conf, p.serverConfig(tmp, opts)); err != nil {
		t.Fatal(err)
	}
	p.Issuer = p.run(t, node, dir, conf)
	p.DeviceURI = p.Issuer + "/device"
	p.waitDiscovery(t)
	return p
}

// serverConfig is what server.mjs reads.
func (p *Provider) serverConfig(tmp string, opts Options) map[string]any {
	redirects := []string{"http://127.0.0.1/callback", "http://[::1]/callback"}
	grants := []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"}
	client := func(id, auth, secret string) map[string]any {
		c := map[string]any{
			"client_id": id, "application_type": "native", "redirect_uris": redirects,
			"grant_types": grants, "response_types": []string{"code"}, "token_endpoint_auth_method": auth,
		}
		if secret != "" {
			c["client_secret"] = secret
		}
		return c
	}
	return map[string]any{
		"key_file": filepath.Join(tmp, "key.pem"), "cert_file": filepath.Join(tmp, "cert.pem"),
		"accounts_file":   p.accountsFile,
		"id_token_ttl":    int(opts.IDTokenTTL / time.Second),
		"device_code_ttl": int(opts.DeviceCodeTTL / time.Second),
		"clients": []any{
			client(PublicClientID, "none", ""),
			client(ConfidentialClientID, "client_secret_post", p.ClientSecret),
			map[string]any{
				"client_id": WebClientID, "application_type": "web", "redirect_uris": append([]string{"https://web.invalid/callback"}, opts.RedirectURIs...),
				"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
				"token_endpoint_auth_method": "client_secret_post", "client_secret": p.ClientSecret,
			},
		},
	}
}

// run starts node and returns the issuer it announces. Its output is
// logged when the test fails.
func (p *Provider) run(t testing.TB, node, dir, conf string) string {
	t.Helper()
	var stderr testkit.Buffer
	cmd := exec.Command(node, "server.mjs", conf)
	cmd.Dir = dir
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start oidc-provider: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("oidc-provider output:\n%s", stderr.String())
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if issuer, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				lines <- issuer
			}
		}
	}()
	select {
	case issuer := <-lines:
		return issuer
	case <-exited:
		t.Fatalf("oidc-provider exited before listening:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider did not listen within 30s:\n%s", stderr.String())
	}
	return ""
}

// HTTPClient returns a client that trusts the provider's CA.
func (p *Provider) HTTPClient() *http.Client {
	return &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CAPool, MinVersion: tls.VersionTLS12}},
	}
}

func (p *Provider) waitDiscovery(t testing.TB) {
	t.Helper()
	client := p.HTTPClient()
	defer client.CloseIdleConnections()
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var doc struct {
			Issuer string `json:"issuer"`
		}
		if last = getJSON(client, p.Issuer+"/.well-known/openid-configuration", &doc); last != nil {
			continue
		}
		if doc.Issuer != p.Issuer {
			t.Fatalf("discovery names issuer %q, want %q", doc.Issuer, p.Issuer)
		}
		return
	}
	t.Fatalf("oidc-provider discovery at %s: %v", p.Issuer, last)
}

func getJSON(client *http.Client, url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// SetGroups replaces a user's groups; the provider puts them in the next
// token it makes (a login or a refresh).
func (p *Provider) SetGroups(user string, groups []string) error {
	return p.update(user, func(a *Account) { a.Groups = append([]string(nil), groups...) })
}

// SetUsername changes the preferred_username claim of a user's next
// tokens; the subject stays the account's key.
func (p *Provider) SetUsername(user, username string) error {
	return p.update(user, func(a *Account) { a.Username = username })
}

// Disable turns an account off: its logins are refused with access_denied
// and its refresh tokens no longer work.
func (p *Provider) Disable(user string) error {
	return p.update(user, func(a *Account) { a.Disabled = true })
}

func (p *Provider) update(user string, change func(*Account)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.accounts[user]
	if !ok {
		return fmt.Errorf("oidctest: no account %q", user)
	}
	change(&a)
	p.accounts[user] = a
	return p.writeAccounts()
}

// writeAccounts replaces the accounts file by rename: the provider reads
// it on every lookup and must never see half of it.
func (p *Provider) writeAccounts() error {
	return writeJSON(p.accountsFile, p.accounts)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeTLS makes a CA and a certificate for 127.0.0.1 and ::1 signed by
// it, writes ca.pem, cert.pem and key.pem into dir, and returns the CA's
// file and pool.
func writeTLS(t testing.TB, dir string) (string, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "oidctest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	for name, block := range map[string]*pem.Block{
		caFile:                         {Type: "CERTIFICATE", Bytes: caDER},
		filepath.Join(dir, "cert.pem"): {Type: "CERTIFICATE", Bytes: leafDER},
		filepath.Join(dir, "key.pem"):  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(name, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return caFile, pool
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ErrRefused is wrapped by CompleteLogin and ApproveDevice when the
// provider answers a form with an error page (a wrong password, an unknown
// user code, a disabled account at the device page).
var ErrRefused = errors.New("oidctest: the provider refused")

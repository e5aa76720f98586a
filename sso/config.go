// Package sso is jitd's OpenID Connect relying party: the providers of
// --sso-config, discovery and keys through go-oidc, the code exchange (PKCE
// S256) and the device flow through x/oauth2, and the checks of an ID
// token, each refusal an *Error with a reason. It has no HTTP handlers and
// decides nothing about roles: package grant issues tokens from the
// Identity it returns, with groups mapped by the policy.
package sso

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jitssh/jitssh/strictmodes"
)

// Config is the parsed --sso-config file.
type Config struct {
	Providers []ProviderConfig
}

// ProviderConfig is one OpenID provider jitd trusts.
type ProviderConfig struct {
	// Name is [a-z0-9-], 1 to 32 bytes, unique in the file.
	Name    string
	Display string
	// Issuer is the https:// issuer URL; discovery is at
	// Issuer/.well-known/openid-configuration.
	Issuer   string
	ClientID string
	// ClientSecret is read from client_secret_file; empty for a public
	// client (PKCE alone).
	ClientSecret string
	// CAFile holds extra PEM roots for the issuer's TLS; empty means the
	// system roots.
	CAFile      string
	Scopes      []string
	UserClaim   string
	GroupsClaim string
	// Algorithms is the allow-list of ID token signature algorithms.
	Algorithms []string
	// MaxTokenLifetime caps the jitssh token of a login; zero means no
	// cap beyond the daemon's and the ID token's.
	MaxTokenLifetime time.Duration
	// ClientAuth is how a confidential client authenticates at the token
	// endpoint: "basic" (client_secret_basic), "post" (client_secret_post)
	// or empty, which tries basic and then post.
	ClientAuth string
	// NoDevice turns the device flow off for this provider (`device:
	// false`): a device code can be phished (an attacker starts a login
	// and talks someone into entering the code), so a site whose people
	// always have a browser can refuse it.
	NoDevice bool
}

// Provider returns the provider named name.
func (c *Config) Provider(name string) (ProviderConfig, bool) {
	for _, p := range c.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return ProviderConfig{}, false
}

type rawConfig struct {
	Providers []rawProvider `yaml:"providers"`
}

type rawProvider struct {
	Name             string   `yaml:"name"`
	Display          string   `yaml:"display"`
	Issuer           string   `yaml:"issuer"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	CAFile           string   `yaml:"ca_file"`
	Scopes           []string `yaml:"scopes"`
	UserClaim        string   `yaml:"user_claim"`
	GroupsClaim      string   `yaml:"groups_claim"`
	Algorithms       []string `yaml:"algorithms"`
	MaxTokenLifetime string   `yaml:"max_token_lifetime"`
	ClientAuth       string   `yaml:"client_auth"`
	Device           *bool    `yaml:"device"`
}

// allowedAlgorithms are the asymmetric JWS algorithms a provider may be
// configured with: never HS* (the client secret would be a signing key)
// and never none.
var allowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

var (
	providerName = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
	claimName    = regexp.MustCompile(`^[A-Za-z0-9_:./-]{1,128}$`)
)

// LoadConfig reads and parses the file at path and the client secret files
// it names. The file and each secret file must not be writable by others
// than the daemon's user (strictmodes) and a secret file must not be
// readable by group or others.
func LoadConfig(path string) (*Config, error) {
	if err := strictmodes.ForProcess().Check(strictmodes.Entry{Path: path, What: "sso config"}); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sso config: %w", err)
	}
	return ParseConfig(path, data, readSecret)
}

// readSecret reads a client secret file, refusing one others may read or
// change.
func readSecret(path string) (string, error) {
	if err := strictmodes.ForProcess().Check(strictmodes.Entry{Path: path, What: "client secret file"}); err != nil {
		return "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("client secret file %s has mode %04o: others may read it; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("client secret file %s must hold one non-empty line", path)
	}
	return s, nil
}

// ParseConfig parses an --sso-config file named name (for errors, which
// read name:line: problem). readSecret reads client_secret_file; nil
// refuses a file that names one.
func ParseConfig(name string, data []byte, readSecret func(string) (string, error)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, lineError(name, err)
	}
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, lineError(name, err)
	}
	if len(raw.Providers) == 0 {
		return nil, fmt.Errorf("%s: providers: want at least one provider", name)
	}
	items := providerNodes(&root)
	cfg := &Config{}
	for i, rp := range raw.Providers {
		var n *yaml.Node
		if i < len(items) {
			n = items[i]
		}
		p, err := rp.check(name, n, readSecret)
		if err != nil {
			return nil, err
		}
		if _, dup := cfg.Provider(p.Name); dup {
			return nil, fmt.Errorf("%s: provider %q is named twice", at(name, field(n, "name")), p.Name)
		}
		cfg.Providers = append(cfg.Providers, p)
	}
	return cfg, nil
}

func (rp rawProvider) check(name string, n *yaml.Node, readSecret func(string) (string, error)) (ProviderConfig, error) {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%s: provider %q: %s: %s", at(name, field(n, key)), rp.Name, key, fmt.Sprintf(format, args...))
	}
	p := ProviderConfig{Name: rp.Name, Display: rp.Display, Issuer: rp.Issuer, ClientID: rp.ClientID, CAFile: rp.CAFile,
		Scopes: rp.Scopes, UserClaim: rp.UserClaim, GroupsClaim: rp.GroupsClaim, Algorithms: rp.Algorithms}
	if !providerName.MatchString(p.Name) {
		return p, bad("name", "%q must be 1 to 32 of [a-z0-9-]", p.Name)
	}
	if p.Display == "" {
		p.Display = p.Name
	}
	if err := checkIssuer(p.Issuer); err != nil {
		return p, bad("issuer", "%v", err)
	}
	if p.ClientID == "" {
		return p, bad("client_id", "is required")
	}
	if len(p.Scopes) == 0 {
		p.Scopes = []string{"openid", "profile", "email"}
	}
	if !slices.Contains(p.Scopes, "openid") {
		return p, bad("scopes", "%q must include openid", p.Scopes)
	}
	if p.UserClaim == "" {
		p.UserClaim = "preferred_username"
	}
	if p.GroupsClaim == "" {
		p.GroupsClaim = "groups"
	}
	for _, c := range []struct{ key, v string }{{"user_claim", p.UserClaim}, {"groups_claim", p.GroupsClaim}} {
		if !claimName.MatchString(c.v) {
			return p, bad(c.key, "%q is not a claim name", c.v)
		}
	}
	if len(p.Algorithms) == 0 {
		p.Algorithms = []string{"RS256", "ES256"}
	}
	for _, a := range p.Algorithms {
		if !slices.Contains(allowedAlgorithms, a) {
			return p, bad("algorithms", "%q is not allowed (want some of %s; symmetric HS* and none never are)", a, strings.Join(allowedAlgorithms, ", "))
		}
	}
	if rp.MaxTokenLifetime != "" {
		d, err := time.ParseDuration(rp.MaxTokenLifetime)
		if err != nil || d < time.Minute {
			return p, bad("max_token_lifetime", "%q is not a duration of at least 1m such as 8h", rp.MaxTokenLifetime)
		}
		p.MaxTokenLifetime = d
	}
	switch rp.ClientAuth {
	case "", "basic", "post":
		p.ClientAuth = rp.ClientAuth
	default:
		return p, bad("client_auth", "%q is not basic or post", rp.ClientAuth)
	}
	p.NoDevice = rp.Device != nil && !*rp.Device
	if rp.ClientSecretFile == "" && rp.ClientAuth != "" {
		return p, bad("client_auth", "a public client (no client_secret_file) has no secret to send")
	}
	if rp.ClientSecretFile != "" {
		if readSecret == nil {
			return p, bad("client_secret_file", "secret files are not read here")
		}
		s, err := readSecret(rp.ClientSecretFile)
		if err != nil {
			return p, bad("client_secret_file", "%v", err)
		}
		p.ClientSecret = s
	}
	return p, nil
}

// checkIssuer accepts an absolute https URL without query or fragment:
// discovery and keys over anything else could be changed on the way.
func checkIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", issuer, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q must be an https:// URL", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must have no user, query or fragment", issuer)
	}
	return nil
}

// providerNodes returns the item nodes of the providers list, for lines.
func providerNodes(root *yaml.Node) []*yaml.Node {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "providers" && m.Content[i+1].Kind == yaml.SequenceNode {
			return m.Content[i+1].Content
		}
	}
	return nil
}

// field returns the value node of key in mapping n, or n.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

func at(name string, n *yaml.Node) string {
	if n == nil || n.Line == 0 {
		return name
	}
	return fmt.Sprintf("%s:%d", name, n.Line)
}

// lineError turns "yaml: line 3: ..." into "name:3: ...".
func lineError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, e := range te.Errors {
			errs = append(errs, lineMsg(name, e))
		}
		return errors.Join(errs...)
	}
	return lineMsg(name, strings.TrimPrefix(err.Error(), "yaml: "))
}

func lineMsg(name, msg string) error {
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			return fmt.Errorf("%s:%s: %s", name, num, text)
		}
	}
	return fmt.Errorf("%s: %s", name, msg)
}

package sso

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	const good = `providers:
  - name: corp
    display: Corp SSO
    issuer: https://127.0.0.1:8443
    client_id: jitssh
    scopes: [openid, groups, offline_access]
    max_token_lifetime: 2h
`
	cfg, err := ParseConfig("sso.yaml", []byte(good), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Providers[0]
	if p.UserClaim != "preferred_username" || p.GroupsClaim != "groups" || len(p.Algorithms) != 2 || p.MaxTokenLifetime.Hours() != 2 {
		t.Fatalf("defaults not applied: %+v", p)
	}
	secret := func(path string) (string, error) { return "s3cret", nil }
	if cfg, err := ParseConfig("sso.yaml", []byte(good+"    client_secret_file: /x\n"), secret); err != nil || cfg.Providers[0].ClientSecret != "s3cret" {
		t.Fatalf("secret: %v %+v", err, cfg)
	}
	base := "providers:\n  - name: corp\n    issuer: https://idp.example\n    client_id: jitssh\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty", "", "sso.yaml: providers: want at least one provider"},
		{"http issuer", strings.Replace(base, "https://idp.example", "http://idp.example", 1), `sso.yaml:3: provider "corp": issuer: "http://idp.example" must be an https:// URL`},
		{"issuer query", strings.Replace(base, "https://idp.example", "https://idp.example/?x=1", 1), `sso.yaml:3: provider "corp": issuer: "https://idp.example/?x=1" must have no user, query or fragment`},
		{"unknown field", base + "    colour: blue\n", "sso.yaml:5: field colour not found in type sso.rawProvider"},
		{"bad name", strings.Replace(base, "corp", "Corp!", 1), `sso.yaml:2: provider "Corp!": name: "Corp!" must be 1 to 32 of [a-z0-9-]`},
		{"no client id", strings.Replace(base, "    client_id: jitssh\n", "", 1), `sso.yaml:2: provider "corp": client_id: is required`},
		{"hs256", base + "    algorithms: [HS256]\n", `sso.yaml:5: provider "corp": algorithms: "HS256" is not allowed`},
		{"none", base + "    algorithms: [none]\n", `sso.yaml:5: provider "corp": algorithms: "none" is not allowed`},
		{"no openid scope", base + "    scopes: [profile]\n", `sso.yaml:5: provider "corp": scopes: ["profile"] must include openid`},
		{"bad lifetime", base + "    max_token_lifetime: soon\n", `sso.yaml:5: provider "corp": max_token_lifetime: "soon" is not a duration`},
		{"secret not read", base + "    client_secret_file: /x\n", `sso.yaml:5: provider "corp": client_secret_file: secret files are not read here`},
		{"duplicate", base + strings.TrimPrefix(base, "providers:\n"), `sso.yaml:5: provider "corp" is named twice`},
		{"bad client auth", base + "    client_auth: jwt\n", `sso.yaml:5: provider "corp": client_auth: "jwt" is not basic or post`},
		{"client auth without secret", base + "    client_auth: post\n", `sso.yaml:5: provider "corp": client_auth: a public client`},
		{"bad yaml", "providers: [", "sso.yaml:1: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("sso.yaml", []byte(tc.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestCheckRedirect(t *testing.T) {
	for uri, ok := range map[string]bool{
		"http://127.0.0.1:5555/callback": true, "http://[::1]:1/cb": true,
		"https://127.0.0.1:5555/cb": false, "http://localhost:5555/cb": false, "http://127.0.0.1/cb": false,
		"http://127.0.0.1:0/cb": false, "http://127.0.0.1:5555": false, "http://127.0.0.1:5555/cb?x=1": false,
		"http://evil.example:80/cb": false, "http://u@127.0.0.1:5555/cb": false, "http://127.0.0.1:05555/cb": false,
	} {
		if err := CheckRedirect(uri); (err == nil) != ok {
			t.Errorf("%s: %v", uri, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("providers:\n  - name: corp\n    issuer: https://idp.example\n    client_id: jitssh\n"))
	f.Add([]byte("providers: [{name: a, issuer: 'https://x', client_id: c, algorithms: [RS256]}]"))
	f.Add([]byte("providers: []"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("f.yaml", data, nil)
		if err != nil {
			return
		}
		for _, p := range cfg.Providers {
			if checkIssuer(p.Issuer) != nil || p.ClientID == "" || len(p.Algorithms) == 0 {
				t.Fatalf("accepted a bad provider %+v", p)
			}
		}
	})
}

package policy

import (
	"maps"
	"slices"
	"unicode/utf8"
)

// Key login modes of SSO.KeyLogin.
const (
	// KeyLoginOn lets every user log in with an enrolled key (the default).
	KeyLoginOn = "on"
	// KeyLoginAdminsOnly lets only admins (and SSO.KeyLoginAllow) log in
	// with a key.
	KeyLoginAdminsOnly = "admins-only"
	// KeyLoginOff lets only the users of SSO.KeyLoginAllow log in with a
	// key.
	KeyLoginOff = "off"
)

// maxProviderGroup bounds a provider group name (Entra object ids,
// Keycloak paths such as /eng/oncall).
const maxProviderGroup = 256

// SSO is the policy's sso section.
type SSO struct {
	// Groups maps a provider group to the groups here it gives.
	Groups map[string][]string
	// KeyLogin is KeyLoginOn, KeyLoginAdminsOnly or KeyLoginOff.
	KeyLogin string
	// KeyLoginAllow are users who may log in with a key whatever KeyLogin
	// says (break-glass admins).
	KeyLoginAllow []string
}

type rawSSO struct {
	Groups        map[string][]string `yaml:"groups"`
	KeyLogin      string              `yaml:"key_login"`
	KeyLoginAllow []string            `yaml:"key_login_allow"`
}

// MapGroups returns the groups here that the provider groups give, sorted
// and without repeats; none when no provider group is mapped.
func (s SSO) MapGroups(provider []string) []string {
	var out []string
	for _, g := range provider {
		out = append(out, s.Groups[g]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// KeyLoginAllowed reports whether user may log in with an enrolled key
// under p's sso.key_login.
func (p *Policy) KeyLoginAllowed(user string) bool {
	switch {
	case p.SSO.KeyLogin == "" || p.SSO.KeyLogin == KeyLoginOn:
		return true
	case slices.Contains(p.SSO.KeyLoginAllow, user):
		return true
	case p.SSO.KeyLogin == KeyLoginAdminsOnly:
		return p.IsAdmin(user)
	}
	return false
}

func (ps parser) sso(top mapping, raw rawSSO) (SSO, error) {
	m, err := ps.section(top, "sso", "", nil)
	if err != nil {
		return SSO{}, err
	}
	out := SSO{KeyLogin: KeyLoginOn, Groups: map[string][]string{}}
	switch raw.KeyLogin {
	case "":
	case KeyLoginOn, KeyLoginAdminsOnly, KeyLoginOff:
		out.KeyLogin = raw.KeyLogin
	default:
		return SSO{}, ps.errf(m.at("key_login"), "sso: key_login: %q is not one of on, admins-only, off", raw.KeyLogin)
	}
	if out.KeyLoginAllow, err = ps.names(m, "sso", "key_login_allow", "user", raw.KeyLoginAllow); err != nil {
		return SSO{}, err
	}
	groups, err := ps.section(m, "groups", "sso", nil)
	if err != nil {
		return SSO{}, err
	}
	for _, kn := range groups.keys {
		k := kn.Value
		if k == "" || len(k) > maxProviderGroup || !utf8.ValidString(k) || !validText(k) {
			return SSO{}, ps.errf(kn, "sso: groups: provider group %q is not a printable name of at most %d bytes", k, maxProviderGroup)
		}
		mapped, err := ps.names(groups, "sso: groups", k, "group", raw.Groups[k])
		if err != nil {
			return SSO{}, err
		}
		if len(mapped) == 0 {
			return SSO{}, ps.errf(groups.at(k), "sso: groups: %q maps to no group", k)
		}
		out.Groups[k] = mapped
	}
	return out, nil
}

// WithSSOUsers returns a copy of p with the users of SSO logins merged in.
// A name p already holds (from the file or a key enrolment) keeps its
// entry: grant refuses SSO logins under such names, and an enrolment made
// later wins over a stored SSO identity. Invalid names are left out. p
// itself is not modified.
func (p *Policy) WithSSOUsers(extra []User) *Policy {
	q := *p
	q.Users = make(map[string]User, len(p.Users)+len(extra))
	maps.Copy(q.Users, p.Users)
	for _, u := range extra {
		if _, taken := q.Users[u.Name]; taken || ValidName("user", u.Name) != nil {
			continue
		}
		q.Users[u.Name] = User{Name: u.Name, Groups: slices.Clone(u.Groups), SSO: true}
	}
	return &q
}

// LocalUser reports whether name is a user of the policy file or of a key
// enrolment, not only an SSO identity: such a name is never an SSO
// login's.
func (p *Policy) LocalUser(name string) bool {
	u, ok := p.Users[name]
	return ok && !u.SSO
}

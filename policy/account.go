package policy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/jitssh/jitssh/api"
)

// ProvisionLogin is the login jitd's provisioner uses on targets (its
// certificate's principal is ProvisionLogin@HOST; the name is
// api.ProvisionPrincipalLogin). No role may grant it, so no grant can
// produce the provisioning principal.
const ProvisionLogin = "jitssh-provision"

// EphemeralPrefix starts every ephemeral login. Only ephemeral roles
// produce such logins, and only jitd chooses them, so no role with fixed
// logins may list one: it would let a grant impersonate an ephemeral
// account on the target.
const EphemeralPrefix = "jit-"

// Limits of an ephemeral account's rule and name.
const (
	// MaxEphemeralLogin is the longest ephemeral login: 32 bytes, what
	// useradd and utmp accept everywhere.
	MaxEphemeralLogin = 32
	// ephemeralUserPart is how much of the user's name goes into the
	// login: jit- (4) + user (≤ 23) + - (1) + 4 suffix characters = 32.
	ephemeralUserPart  = MaxEphemeralLogin - len(EphemeralPrefix) - 1 - ephemeralSuffixLen
	ephemeralSuffixLen = 4
	maxSudoCommands    = 64
	maxSudoCommandLen  = 1024
	maxAccountGroups   = 32
)

// DefaultShell is an ephemeral account's shell when the role names none.
const DefaultShell = "/bin/bash"

// AccountRule describes the one-time account an ephemeral role creates on
// the target for each grant (docs/ephemeral.md).
type AccountRule struct {
	// Groups are the account's supplementary groups; they must exist on
	// the target, which never creates them.
	Groups []string
	// SudoAll grants sudo for every command; otherwise Sudo lists the
	// absolute command lines allowed (none: no sudo at all).
	SudoAll bool
	Sudo    []string
	// Shell is the account's login shell, an absolute path.
	Shell string
}

// SudoRules returns the rule as the target's helper takes it: nil for no
// sudo, ["ALL"] for all, else the command lines.
func (a AccountRule) SudoRules() []string {
	if a.SudoAll {
		return []string{"ALL"}
	}
	return slices.Clone(a.Sudo)
}

func (a *AccountRule) clone() *AccountRule {
	if a == nil {
		return nil
	}
	c := *a
	c.Groups, c.Sudo = slices.Clone(a.Groups), slices.Clone(a.Sudo)
	return &c
}

// posixName is the portable user and group name rule (POSIX's portable
// filename characters, lower case, not starting with a digit or '-'), as
// Debian's useradd accepts it by default.
var posixName = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

// ValidEphemeralLogin reports whether s has the form of a login jitd makes
// for an ephemeral grant: EphemeralPrefix, a valid POSIX name, at most
// MaxEphemeralLogin bytes.
func ValidEphemeralLogin(s string) error {
	switch {
	case !strings.HasPrefix(s, EphemeralPrefix):
		return fmt.Errorf("ephemeral login %q does not start with %q", s, EphemeralPrefix)
	case len(s) > MaxEphemeralLogin:
		return fmt.Errorf("ephemeral login %q is longer than %d bytes", s, MaxEphemeralLogin)
	case !posixName.MatchString(s):
		return fmt.Errorf("ephemeral login %q is not a portable POSIX user name", s)
	}
	return nil
}

// EphemeralLogin returns the login of an ephemeral grant for user:
// "jit-", the user's name reduced to POSIX name characters and truncated
// (so that the whole is at most 32 bytes), "-", and 4 characters of
// base32 (a-z, 2-7) of the SHA-256 of seed (the request ID) and attempt.
// A caller whose first name is taken on the host asks again with the next
// attempt. The result always passes ValidEphemeralLogin.
func EphemeralLogin(user, seed string, attempt int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(user) {
		if b.Len() >= ephemeralUserPart {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	part := b.String()
	if part == "" {
		part = "u"
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", seed, attempt))
	suffix := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:ephemeralSuffixLen]
	return EphemeralPrefix + part + "-" + suffix
}

// checkRoleLogin refuses logins no role with fixed logins may list.
func checkRoleLogin(login string) error {
	switch {
	case login == ProvisionLogin:
		return fmt.Errorf("login %q is reserved for jitd's provisioning of ephemeral accounts", login)
	case strings.HasPrefix(login, EphemeralPrefix):
		return fmt.Errorf("login %q: logins starting with %q are made by jitd for ephemeral roles (account: ephemeral) and cannot be listed", login, EphemeralPrefix)
	}
	return nil
}

// account parses a role's account fields: account: ephemeral, with
// account_groups, sudo and shell, which are refused without it.
func (ps parser) account(m mapping, ctx string, raw rawRole) (*AccountRule, error) {
	_, hasAccount := m.fields["account"]
	if !hasAccount {
		for _, k := range []string{"account_groups", "sudo", "shell"} {
			if _, set := m.fields[k]; set {
				return nil, ps.errf(m.at(k), "%s: %s: only for account: ephemeral", ctx, k)
			}
		}
		return nil, nil
	}
	if raw.Account != "ephemeral" {
		return nil, ps.errf(m.at("account"), "%s: account: %q is not a known kind (the one kind is ephemeral)", ctx, raw.Account)
	}
	if _, set := m.fields["logins"]; set {
		return nil, ps.errf(m.at("logins"), "%s: logins: not allowed with account: ephemeral (jitd makes the login for each grant)", ctx)
	}
	a := &AccountRule{Shell: DefaultShell}
	var err error
	if a.Groups, err = ps.names(m, ctx, "account_groups", "group", raw.AccountGroups); err != nil {
		return nil, err
	}
	if len(a.Groups) > maxAccountGroups {
		return nil, ps.errf(m.at("account_groups"), "%s: account_groups: %d groups, at most %d", ctx, len(a.Groups), maxAccountGroups)
	}
	for j, g := range a.Groups {
		if len(g) > MaxEphemeralLogin || !posixName.MatchString(g) {
			return nil, ps.errf(m.item("account_groups", j), "%s: account_groups: %q is not a portable POSIX group name (a-z, 0-9, _ and -, not starting with a digit or -, at most 32)", ctx, g)
		}
		// The helper refuses it (every account joins it already): a role
		// naming it could never create its account.
		if g == api.AccountManagedGroup {
			return nil, ps.errf(m.item("account_groups", j), "%s: account_groups: %q is the group jitssh adds every ephemeral account to itself; drop it", ctx, g)
		}
	}
	if _, set := m.fields["shell"]; set {
		if err := checkShell(raw.Shell); err != nil {
			return nil, ps.errf(m.at("shell"), "%s: shell: %v", ctx, err)
		}
		a.Shell = raw.Shell
	}
	if err := ps.sudo(m, ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

func checkShell(s string) error {
	switch {
	case !strings.HasPrefix(s, "/"):
		return fmt.Errorf("%q is not an absolute path", s)
	case len(s) > 256:
		return fmt.Errorf("%q is longer than 256 bytes", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' || r == ':' }):
		return fmt.Errorf("%q contains whitespace, ':', control or non-ASCII characters", s)
	case path.Clean(s) != s || s == "/":
		return fmt.Errorf("%q is not a clean path (%q)", s, path.Clean(s))
	}
	return nil
}

// sudo parses "sudo: all" or a list of absolute command lines.
func (ps parser) sudo(m mapping, ctx string, a *AccountRule) error {
	n, set := m.fields["sudo"]
	if !set {
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != "all" || n.Tag != "!!str" {
			return ps.errf(n, "%s: sudo: want all or a list of absolute command lines, got %q", ctx, n.Value)
		}
		a.SudoAll = true
		return nil
	case yaml.SequenceNode:
	default:
		return ps.errf(n, "%s: sudo: want all or a list of absolute command lines, got %s", ctx, kindName(n))
	}
	if len(n.Content) == 0 {
		return ps.errf(n, "%s: sudo: empty list (remove the field for no sudo)", ctx)
	}
	if len(n.Content) > maxSudoCommands {
		return ps.errf(n, "%s: sudo: %d commands, at most %d", ctx, len(n.Content), maxSudoCommands)
	}
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode {
			return ps.errf(item, "%s: sudo: want a command line, got %s", ctx, kindName(item))
		}
		if err := checkSudoCommand(item.Value); err != nil {
			return ps.errf(item, "%s: sudo: %v", ctx, err)
		}
		if slices.Contains(a.Sudo, item.Value) {
			return ps.errf(item, "%s: sudo: %q listed twice", ctx, item.Value)
		}
		a.Sudo = append(a.Sudo, item.Value)
	}
	return nil
}

// sudoSpecial are the characters with a meaning in sudoers syntax (list
// and runas separators, escapes, comments, quotes, wildcards, regular
// expressions); the target's helper refuses the same (api.ValidSudo).
const sudoSpecial = ",:=\\#*?[]!^$\"'%"

// checkSudoCommand accepts an absolute command path with optional
// arguments, single-spaced, without the characters that change meaning in
// a sudoers command list (, : = \ # " and wildcards are refused rather
// than escaped, so the rule reads as written).
func checkSudoCommand(s string) error {
	switch {
	case len(s) > maxSudoCommandLen:
		return fmt.Errorf("command line is longer than %d bytes", maxSudoCommandLen)
	case !strings.HasPrefix(s, "/"):
		return fmt.Errorf("command %q must start with an absolute path", s)
	case !validText(s):
		return fmt.Errorf("command %q contains control characters or invalid UTF-8", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r > '~' }):
		return fmt.Errorf("command %q must be printable ASCII", s)
	case strings.ContainsAny(s, sudoSpecial):
		return fmt.Errorf("command %q contains one of %s, which sudoers would read specially", s, sudoSpecial)
	case strings.Contains(s, "  ") || strings.TrimSpace(s) != s || strings.ContainsAny(s, "\t"):
		return fmt.Errorf("command %q must be single-spaced without leading or trailing space", s)
	case strings.Contains(s, "ALL"):
		return fmt.Errorf("command %q contains ALL; write sudo: all to grant every command", s)
	}
	return nil
}

// Package policy parses jitssh's policy file and decides access requests.
//
// The package is pure: it reads no files, opens no connections and reads no
// clock (Evaluate takes the time as an argument). The one exception is
// time.LoadLocation while parsing an approval schedule's time zone.
//
// A *Policy is read-only once built: Parse and WithUsers return fresh values,
// and all methods are safe for concurrent use as long as nobody mutates the
// exported fields.
package policy

import (
	"bytes"
	"regexp"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
)

// Policy is a parsed policy file. See docs/policy.md for the file format.
type Policy struct {
	// Users by name. Names pass ValidName("user", ...).
	Users map[string]User
	// Hosts by name. Names pass ValidName("host", ...).
	Hosts map[string]Host
	// Roles in file order; the order breaks ties in Evaluate.
	Roles []Role
	// Admins says which groups hold the admin role.
	Admins AdminRule
	// Auditors are the groups whose members may list, replay and export
	// recorded sessions.
	Auditors []string
	// Console is the web console's settings (console.go).
	Console ConsoleRule
	// SSO maps OpenID provider groups to groups here and says who may
	// still log in with a key (docs/policy.md "sso").
	SSO SSO
}

// AdminRule describes the admin role.
type AdminRule struct {
	// Groups whose members are admins.
	Groups []string
	// MayRequestAccess lets admins request host access. It is false by
	// default so that admin and everyday identities stay apart.
	MayRequestAccess bool
}

// User is an engineer known to the policy.
type User struct {
	Name   string
	Groups []string
	// Keys the user authenticates with; may be empty (keys can be enrolled
	// later and merged in with WithUsers).
	Keys []ssh.PublicKey
	// SSO is true for a user who exists only as an SSO identity (merged
	// by WithSSOUsers), not in the file or a key enrolment.
	SSO bool
}

// Host is a target host.
type Host struct {
	Name string
	// Address is host:port, as the bastion dials it.
	Address string
	Labels  map[string]string
	// HostKey, when set, pins the target's host key; nil means the target
	// must present a certificate from the host CA instead.
	HostKey ssh.PublicKey
}

// HostSelector picks the hosts a role applies to. A host matches when its
// name matches one of Names (path.Match globs) and it carries every label in
// Labels; an empty part is not checked, but an entirely empty selector
// matches no host.
type HostSelector struct {
	Names  []string
	Labels map[string]string
}

// JustificationRule constrains the free-text justification of a request.
type JustificationRule struct {
	// MinLength is the fewest characters (runes, ignoring surrounding
	// whitespace) a justification must have.
	MinLength int
	// Ticket, when set, must match somewhere in the justification.
	Ticket *regexp.Regexp
}

// Role grants logins on a set of hosts to members of some groups.
type Role struct {
	Name   string
	Groups []string
	Hosts  HostSelector
	Logins []string
	// TTL is the certificate lifetime when the request names none; MaxTTL
	// is the longest a request may ask for (never above 24h).
	TTL, MaxTTL   time.Duration
	Justification JustificationRule
	// Extensions are the certificate extensions granted beyond permit-pty,
	// which is always granted.
	Extensions []string
	// SourceAddresses are CIDRs for the source-address critical option.
	SourceAddresses []string
	// ForceCommand, when not empty, becomes the force-command critical option.
	ForceCommand string
	// RecordInput asks the bastion to record keystrokes too.
	RecordInput bool
	// Approval is nil when requests need no approval.
	Approval *ApprovalRule
	// RequestTTL is how long a request may wait for approval; RedeemTTL is
	// how long an approved request may wait to be redeemed.
	RequestTTL, RedeemTTL time.Duration
	// BreakGlass lets a requester skip approval in an emergency; such
	// grants are flagged in the Decision.
	BreakGlass bool
	// IdleTimeout, when not zero, is how long a bastion session of the
	// role may go without a byte from the engineer before it is cut
	// (warned a minute before); at most MaxTTLLimit, whole seconds.
	IdleTimeout time.Duration
	// Account, when set, makes the role ephemeral: it has no Logins, and
	// each grant gets a one-time login (EphemeralLogin) whose account jitd
	// creates on the target with these rights and removes after.
	Account *AccountRule
}

// ApprovalRule says who must approve a role's requests.
type ApprovalRule struct {
	// Approvers are groups whose members may approve.
	Approvers []string
	// Count is how many distinct approvers are needed (at least 1).
	Count int
	// AutoApprove, when set, approves matching requests without a person.
	AutoApprove *AutoApproveRule
}

// AutoApproveRule approves a request when every condition that is set holds;
// at least one is set.
type AutoApproveRule struct {
	// Ticket must match somewhere in the justification.
	Ticket *regexp.Regexp
	// Schedule must contain the time of the request.
	Schedule *Schedule
}

// Role returns the role with the given name.
func (p *Policy) Role(name string) (Role, bool) {
	for _, r := range p.Roles {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// Host returns the host with the given name.
func (p *Policy) Host(name string) (Host, bool) {
	h, ok := p.Hosts[name]
	return h, ok
}

// User returns the user with the given name.
func (p *Policy) User(name string) (User, bool) {
	u, ok := p.Users[name]
	return u, ok
}

// IsAdmin reports whether user exists and belongs to an admin group.
func (p *Policy) IsAdmin(user string) bool {
	u, ok := p.Users[user]
	return ok && intersects(u.Groups, p.Admins.Groups)
}

// IsAuditor reports whether user exists and belongs to an auditor group.
func (p *Policy) IsAuditor(user string) bool {
	u, ok := p.Users[user]
	return ok && intersects(u.Groups, p.Auditors)
}

// UserByKey returns the user one of whose keys equals key (compared by wire
// encoding). If no user or more than one user holds the key it reports
// false: an ambiguous key identifies nobody.
func (p *Policy) UserByKey(key ssh.PublicKey) (User, bool) {
	if key == nil {
		return User{}, false
	}
	want := key.Marshal()
	var found User
	n := 0
	for _, u := range p.Users {
		if slices.ContainsFunc(u.Keys, func(k ssh.PublicKey) bool { return k != nil && bytes.Equal(k.Marshal(), want) }) {
			found = u
			n++
		}
	}
	if n != 1 {
		return User{}, false
	}
	return found, true
}

// WithUsers returns a copy of p with the extra users (for example those
// enrolled at run time) merged in. For a user the policy file defines, the
// file stays the authority on groups and the extra user's keys are added to
// the file's keys: enrolment binds keys, it never changes who is in which
// group. Extra users whose names fail ValidName are left out. p itself is
// not modified; hosts and roles are shared with p.
func (p *Policy) WithUsers(extra []User) *Policy {
	q := *p
	q.Users = make(map[string]User, len(p.Users)+len(extra))
	for name, u := range p.Users {
		q.Users[name] = u
	}
	for _, u := range extra {
		if ValidName("user", u.Name) != nil {
			continue
		}
		merged, inFile := q.Users[u.Name]
		if !inFile {
			q.Users[u.Name] = User{Name: u.Name, Groups: slices.Clone(u.Groups), Keys: slices.Clone(u.Keys)}
			continue
		}
		merged.Keys = slices.Clone(merged.Keys)
		for _, k := range u.Keys {
			if !slices.ContainsFunc(merged.Keys, func(have ssh.PublicKey) bool { return bytes.Equal(have.Marshal(), k.Marshal()) }) {
				merged.Keys = append(merged.Keys, k)
			}
		}
		q.Users[u.Name] = merged
	}
	return &q
}

// CanApprove reports whether approver may approve requester's request for
// role. Nobody approves their own request (ReasonSelfApproval); the approver
// must be a known user (ReasonUnknownUser), the role must exist
// (ReasonUnknownRole) and require approval, and the approver must belong to
// one of its approver groups (ReasonNotApprover). On success it returns true
// and ReasonAllowed.
func (p *Policy) CanApprove(approver, requester, role string) (bool, Reason) {
	if approver == requester {
		return false, ReasonSelfApproval
	}
	u, ok := p.Users[approver]
	if !ok {
		return false, ReasonUnknownUser
	}
	r, ok := p.Role(role)
	if !ok {
		return false, ReasonUnknownRole
	}
	if r.Approval == nil || !intersects(u.Groups, r.Approval.Approvers) {
		return false, ReasonNotApprover
	}
	return true, ReasonAllowed
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

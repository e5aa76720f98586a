package livepolicy

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/policy"
)

// Names says which named entries (users, hosts or roles) a reload added,
// removed or changed, each list sorted.
type Names struct {
	Added, Removed, Changed []string
}

// Empty reports whether nothing was added, removed or changed.
func (n Names) Empty() bool { return len(n.Added)+len(n.Removed)+len(n.Changed) == 0 }

// Change is what differs between two policies: the users (with enrolled
// users merged in), hosts and roles by name, and whether the admin or
// auditor rules differ.
type Change struct {
	Users, Hosts, Roles Names
	// Admins is true when the admin groups, the admins' right to request
	// access or the auditor groups differ.
	Admins bool
	// Skipped names what the reload left out although the policy is in
	// force: enrolled keys that no longer parse. Diff leaves it empty.
	Skipped []string
}

// Empty reports whether the two policies grant the same.
func (c Change) Empty() bool {
	return c.Users.Empty() && c.Hosts.Empty() && c.Roles.Empty() && !c.Admins && len(c.Skipped) == 0
}

// String summarises the change for a log line or a reply, e.g.
// "users +zoe; hosts ~db1; roles -ops", or "no change".
func (c Change) String() string {
	if c.Empty() {
		return "no change"
	}
	var parts []string
	for _, kv := range []struct {
		what string
		n    Names
	}{{"users", c.Users}, {"hosts", c.Hosts}, {"roles", c.Roles}} {
		if kv.n.Empty() {
			continue
		}
		var items []string
		for _, l := range []struct {
			sign  string
			names []string
		}{{"+", kv.n.Added}, {"-", kv.n.Removed}, {"~", kv.n.Changed}} {
			for _, name := range l.names {
				items = append(items, l.sign+name)
			}
		}
		parts = append(parts, kv.what+" "+strings.Join(items, " "))
	}
	if c.Admins {
		parts = append(parts, "admin or auditor rules changed")
	}
	if len(c.Skipped) > 0 {
		parts = append(parts, "left out: "+strings.Join(c.Skipped, "; "))
	}
	return strings.Join(parts, "; ")
}

// LogValue gives a log line the change as counts per kind, leaving out the
// empty ones, with the summary of String.
func (c Change) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("summary", c.String())}
	for _, kv := range []struct {
		key string
		n   []string
	}{
		{"users_added", c.Users.Added}, {"users_removed", c.Users.Removed}, {"users_changed", c.Users.Changed},
		{"hosts_added", c.Hosts.Added}, {"hosts_removed", c.Hosts.Removed}, {"hosts_changed", c.Hosts.Changed},
		{"roles_added", c.Roles.Added}, {"roles_removed", c.Roles.Removed}, {"roles_changed", c.Roles.Changed},
	} {
		if len(kv.n) > 0 {
			attrs = append(attrs, slog.Int(kv.key, len(kv.n)))
		}
	}
	return slog.GroupValue(attrs...)
}

// Diff reports what after changes relative to before.
func Diff(before, after *policy.Policy) Change {
	beforeRoles, afterRoles := map[string]policy.Role{}, map[string]policy.Role{}
	for _, r := range before.Roles {
		beforeRoles[r.Name] = r
	}
	for _, r := range after.Roles {
		afterRoles[r.Name] = r
	}
	return Change{
		Users: diffNames(before.Users, after.Users, sameUser),
		Hosts: diffNames(before.Hosts, after.Hosts, sameHost),
		Roles: diffNames(beforeRoles, afterRoles, func(a, b policy.Role) bool { return roleText(a) == roleText(b) }),
		Admins: !slices.Equal(before.Admins.Groups, after.Admins.Groups) ||
			before.Admins.MayRequestAccess != after.Admins.MayRequestAccess ||
			!slices.Equal(before.Auditors, after.Auditors),
	}
}

func diffNames[V any](before, after map[string]V, same func(a, b V) bool) Names {
	var n Names
	for _, name := range slices.Sorted(maps.Keys(after)) {
		o, ok := before[name]
		switch {
		case !ok:
			n.Added = append(n.Added, name)
		case !same(o, after[name]):
			n.Changed = append(n.Changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[name]; !ok {
			n.Removed = append(n.Removed, name)
		}
	}
	return n
}

func sameUser(a, b policy.User) bool {
	return slices.Equal(a.Groups, b.Groups) && slices.EqualFunc(a.Keys, b.Keys, sameKey)
}

func sameHost(a, b policy.Host) bool {
	return a.Address == b.Address && maps.Equal(a.Labels, b.Labels) && sameKey(a.HostKey, b.HostKey)
}

func sameKey(a, b ssh.PublicKey) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return bytes.Equal(a.Marshal(), b.Marshal())
}

// roleText renders every field of a role that decides a request, with
// regular expressions and schedules by their source text, so that two parses
// of the same role render alike.
func roleText(r policy.Role) string {
	text := fmt.Sprintf("%q %v %v %q %v %v %d %q %q %q %q %v %v %v %v", r.Groups, r.Hosts.Names, r.Hosts.Labels, r.Logins,
		r.TTL, r.MaxTTL, r.Justification.MinLength, reText(r.Justification.Ticket), r.Extensions, r.SourceAddresses, r.ForceCommand,
		r.RecordInput, r.RequestTTL, r.RedeemTTL, r.BreakGlass)
	if a := r.Approval; a != nil {
		text += fmt.Sprintf(" approval=%q/%d", a.Approvers, a.Count)
		if aa := a.AutoApprove; aa != nil {
			text += fmt.Sprintf(" auto=%q/%q", reText(aa.Ticket), aa.Schedule.String())
		}
	}
	return text
}

func reText(re *regexp.Regexp) string {
	if re == nil {
		return ""
	}
	return re.String()
}

package policy

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// Requestable is a host a user may ask for, and what they may ask for on
// it: the answer to "which hosts exist for me" that `jit hosts` shows.
type Requestable struct {
	Host   string
	Labels map[string]string
	// Logins hold one entry per login and role that grants it, sorted by
	// login and then in the policy file's order of roles.
	Logins []RequestableLogin
}

// RequestableLogin is one login on a host as one role grants it.
type RequestableLogin struct {
	Login, Role string
	// Approval is true when the role has an approval rule: a person
	// approves, unless its auto_approve conditions hold for the request.
	Approval bool
	// Ticket is true when the justification must match a ticket pattern.
	Ticket bool
	// MaxTTL is the longest certificate lifetime the role grants.
	MaxTTL time.Duration
	// Ephemeral is true for an ephemeral role: Login is empty, as jitd
	// makes a one-time login for each grant.
	Ephemeral bool
}

// Requestable lists, sorted by host name, the hosts user may request and,
// per host, every login a role of theirs selects it for, with what the role
// asks of a request. It lists nothing for an unknown user, for an admin
// while admins.may_request_access is false, and no host no role of theirs
// selects: it reveals only what Evaluate could grant them (given a good
// justification and TTL), so callers may show it to that user.
func (p *Policy) Requestable(user string) []Requestable {
	u, ok := p.Users[user]
	if !ok || p.IsAdmin(user) && !p.Admins.MayRequestAccess {
		return nil
	}
	var out []Requestable
	for _, name := range slices.Sorted(maps.Keys(p.Hosts)) {
		h := p.Hosts[name]
		var logins []RequestableLogin
		for i := range p.Roles {
			r := &p.Roles[i]
			if !intersects(u.Groups, r.Groups) || !r.Hosts.Matches(h) {
				continue
			}
			if r.Account != nil {
				logins = append(logins, RequestableLogin{Role: r.Name, Ephemeral: true, Approval: r.Approval != nil,
					Ticket: r.Justification.Ticket != nil, MaxTTL: r.MaxTTL})
			}
			for _, l := range r.Logins {
				logins = append(logins, RequestableLogin{Login: l, Role: r.Name, Approval: r.Approval != nil,
					Ticket: r.Justification.Ticket != nil, MaxTTL: r.MaxTTL})
			}
		}
		if len(logins) == 0 {
			continue
		}
		slices.SortStableFunc(logins, func(a, b RequestableLogin) int { return cmp.Compare(a.Login, b.Login) })
		out = append(out, Requestable{Host: name, Labels: maps.Clone(h.Labels), Logins: logins})
	}
	return out
}

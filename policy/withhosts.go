package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// WithHosts returns a copy of p with the extra hosts (those enrolled in the
// store) merged in. A host of the same name as one the policy file lists is
// replaced by the extra one: the store is the authority on the hosts it
// holds, and the file's hosts section keeps working for the others. Extra
// hosts whose names fail ValidName("host", ...) or that have no address are
// left out. p itself is not modified; users and roles are shared with p.
func (p *Policy) WithHosts(extra []Host) *Policy {
	q := *p
	q.Hosts = make(map[string]Host, len(p.Hosts)+len(extra))
	maps.Copy(q.Hosts, p.Hosts)
	for _, h := range extra {
		if ValidName("host", h.Name) != nil || h.Address == "" {
			continue
		}
		h.Labels = maps.Clone(h.Labels)
		q.Hosts[h.Name] = h
	}
	return &q
}

// HostLogins returns every login any role of p may grant on host h (whether
// or not approval is needed), sorted and without repeats: the logins a
// target installs principals for.
func (p *Policy) HostLogins(h Host) []string {
	var out []string
	for _, r := range p.Roles {
		if r.Hosts.Matches(h) {
			out = append(out, r.Logins...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ValidAddress reports whether addr is a host address as the policy file
// accepts it: host:port, a printable host part and a port from 1 to 65535.
func ValidAddress(addr string) error {
	if err := validAddress(addr); err != nil {
		return fmt.Errorf("address %w", err)
	}
	return nil
}

// ValidLabel reports whether a host label is one the policy file accepts:
// a printable name without spaces or '=' of at most MaxNameLength bytes,
// and a printable single-line value of at most 256 bytes.
func ValidLabel(key, value string) error {
	if key == "" || !validText(key) || strings.ContainsFunc(key, func(r rune) bool { return r == ' ' || r == '=' }) || len(key) > MaxNameLength {
		return fmt.Errorf("bad label name %q", key)
	}
	if !validText(value) || strings.ContainsAny(value, "\r\n") || len(value) > 256 {
		return fmt.Errorf("label %q: value %q is not a short single-line string", key, value)
	}
	return nil
}

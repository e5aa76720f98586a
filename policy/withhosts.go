package policy

import "maps"

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

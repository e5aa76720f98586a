package policy

import (
	"fmt"
	"net"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// allowedExtensions are the certificate extensions a role may grant. They
// are the OpenSSH permit-* extensions; permit-pty is always granted.
func allowedExtension(e string) bool {
	switch e {
	case "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-user-rc", "permit-pty":
		return true
	}
	return false
}

// roleContext names the i-th role in errors: by its name when it has a
// valid one, else by position.
func roleContext(n *yaml.Node, i int) string {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k, v := n.Content[j], n.Content[j+1]; k.Value == "name" && v.Kind == yaml.ScalarNode && ValidName("role", v.Value) == nil {
				return fmt.Sprintf("role %q", v.Value)
			}
		}
	}
	return fmt.Sprintf("roles[%d]", i)
}

func (ps parser) role(n *yaml.Node, i int, raw rawRole) (Role, error) {
	ctx := roleContext(n, i)
	m, err := ps.mappingOf(n, ctx, "definition", reflect.TypeFor[rawRole]())
	if err != nil {
		return Role{}, err
	}
	r := Role{Name: raw.Name, ForceCommand: raw.ForceCommand, RecordInput: raw.RecordInput, BreakGlass: raw.BreakGlass}
	if err := ValidName("role", raw.Name); err != nil {
		return Role{}, ps.errf(m.at("name"), "%s: name: %v", ctx, err)
	}
	if r.Groups, err = ps.names(m, ctx, "groups", "group", raw.Groups); err != nil {
		return Role{}, err
	}
	if len(r.Groups) == 0 {
		return Role{}, ps.errf(m.at("groups"), "%s: groups: at least one group is required", ctx)
	}
	if r.Hosts, err = ps.selector(m, ctx, raw.Hosts); err != nil {
		return Role{}, err
	}
	if err := ps.logins(m, ctx, raw, &r); err != nil {
		return Role{}, err
	}
	durations := []struct {
		key   string
		raw   string
		def   time.Duration
		limit time.Duration
		out   *time.Duration
	}{
		{key: "max_ttl", raw: raw.MaxTTL, def: DefaultMaxTTL, limit: MaxTTLLimit, out: &r.MaxTTL},
		{key: "ttl", raw: raw.TTL, def: DefaultTTL, limit: MaxTTLLimit, out: &r.TTL},
		{key: "request_ttl", raw: raw.RequestTTL, def: DefaultRequestTTL, limit: MaxWaitLimit, out: &r.RequestTTL},
		{key: "redeem_ttl", raw: raw.RedeemTTL, def: DefaultRedeemTTL, limit: MaxWaitLimit, out: &r.RedeemTTL},
		{key: "idle_timeout", raw: raw.IdleTimeout, def: 0, limit: MaxTTLLimit, out: &r.IdleTimeout},
	}
	for _, d := range durations {
		if *d.out, err = parseDuration(d.raw, d.def, d.limit); err != nil {
			return Role{}, ps.errf(m.at(d.key), "%s: %s: %v", ctx, d.key, err)
		}
	}
	if r.TTL > r.MaxTTL {
		return Role{}, ps.errf(m.at("ttl"), "%s: ttl %s exceeds max_ttl %s", ctx, formatDuration(r.TTL), formatDuration(r.MaxTTL))
	}
	if r.Justification, err = ps.justification(m, ctx, raw.Justification); err != nil {
		return Role{}, err
	}
	for j, e := range raw.Extensions {
		if !allowedExtension(e) {
			return Role{}, ps.errf(m.item("extensions", j), "%s: extensions: unknown extension %q (allowed: permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-user-rc)", ctx, e)
		}
		if slices.Contains(raw.Extensions[:j], e) {
			return Role{}, ps.errf(m.item("extensions", j), "%s: extensions: %q listed twice", ctx, e)
		}
		if e != "permit-pty" {
			r.Extensions = append(r.Extensions, e)
		}
	}
	for j, s := range raw.SourceAddresses {
		cidr, err := parseCIDR(s)
		if err != nil {
			return Role{}, ps.errf(m.item("source_addresses", j), "%s: source_addresses: %v", ctx, err)
		}
		r.SourceAddresses = append(r.SourceAddresses, cidr)
	}
	if !validText(r.ForceCommand) {
		return Role{}, ps.errf(m.at("force_command"), "%s: force_command: control characters are not allowed", ctx)
	}
	if r.Approval, err = ps.approval(m, ctx, raw.Approval); err != nil {
		return Role{}, err
	}
	return r, nil
}

// logins parses the role's fixed logins, or its ephemeral account: exactly
// one of the two. No role may list the provisioning login or a login of
// the ephemeral form.
func (ps parser) logins(m mapping, ctx string, raw rawRole, r *Role) error {
	var err error
	if r.Account, err = ps.account(m, ctx, raw); err != nil || r.Account != nil {
		return err
	}
	if r.Logins, err = ps.names(m, ctx, "logins", "login", raw.Logins); err != nil {
		return err
	}
	if len(r.Logins) == 0 {
		return ps.errf(m.at("logins"), "%s: logins: at least one login is required (or account: ephemeral)", ctx)
	}
	for j, l := range r.Logins {
		if err := checkRoleLogin(l); err != nil {
			return ps.errf(m.item("logins", j), "%s: logins: %v", ctx, err)
		}
	}
	return nil
}

// parseDuration parses a positive whole number of seconds, at most limit;
// the empty string gives def.
func parseDuration(s string, def, limit time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("bad duration %q (want e.g. 10m or 1h30m)", s)
	case d <= 0:
		return 0, fmt.Errorf("duration %q must be positive", s)
	case d%time.Second != 0:
		return 0, fmt.Errorf("duration %q must be whole seconds", s)
	case d > limit:
		return 0, fmt.Errorf("duration %q exceeds the limit of %s", s, formatDuration(limit))
	}
	return d, nil
}

// parseCIDR accepts an address block in canonical CIDR form.
func parseCIDR(s string) (string, error) {
	ip, ipnet, err := net.ParseCIDR(s)
	if err != nil {
		return "", fmt.Errorf("bad CIDR %q", s)
	}
	if !ip.Equal(ipnet.IP) {
		return "", fmt.Errorf("CIDR %q has host bits set (did you mean %q?)", s, ipnet.String())
	}
	return ipnet.String(), nil
}

func (ps parser) selector(m mapping, ctx string, raw rawSelector) (HostSelector, error) {
	sel, err := ps.section(m, "hosts", ctx, reflect.TypeFor[rawSelector]())
	if err != nil {
		return HostSelector{}, err
	}
	hctx := ctx + ": hosts"
	for j, pattern := range raw.Names {
		at := sel.item("names", j)
		if _, err := path.Match(pattern, ""); err != nil {
			return HostSelector{}, ps.errf(at, "%s: names: bad pattern %q: %v", hctx, pattern, err)
		}
		// Glob characters aside, a pattern must read as a host name.
		if err := ValidName("host", strings.NewReplacer("*", "x", "?", "x").Replace(pattern)); err != nil {
			return HostSelector{}, ps.errf(at, "%s: names: bad pattern %q", hctx, pattern)
		}
	}
	labels, err := ps.section(sel, "labels", hctx, nil)
	if err != nil {
		return HostSelector{}, err
	}
	if err := ps.labels(labels, hctx+": labels"); err != nil {
		return HostSelector{}, err
	}
	if len(raw.Names) == 0 && len(raw.Labels) == 0 {
		return HostSelector{}, ps.errf(m.at("hosts"), "%s: names or labels are required", hctx)
	}
	return HostSelector{Names: slices.Clone(raw.Names), Labels: raw.Labels}, nil
}

func (ps parser) justification(m mapping, ctx string, raw rawJustification) (JustificationRule, error) {
	jm, err := ps.section(m, "justification", ctx, reflect.TypeFor[rawJustification]())
	if err != nil {
		return JustificationRule{}, err
	}
	jctx := ctx + ": justification"
	j := JustificationRule{MinLength: 1}
	if raw.MinLength != nil {
		if *raw.MinLength < 1 || *raw.MinLength > MaxJustificationLength {
			return JustificationRule{}, ps.errf(jm.at("min_length"), "%s: min_length %d must be from 1 to %d", jctx, *raw.MinLength, MaxJustificationLength)
		}
		j.MinLength = *raw.MinLength
	}
	if j.Ticket, err = ps.regexp(jm, jctx, raw.Ticket); err != nil {
		return JustificationRule{}, err
	}
	return j, nil
}

// regexp compiles the optional "ticket" field of m as written.
func (ps parser) regexp(m mapping, ctx, expr string) (*regexp.Regexp, error) {
	if _, set := m.fields["ticket"]; !set {
		return nil, nil
	}
	if expr == "" {
		return nil, ps.errf(m.at("ticket"), "%s: ticket: empty pattern (remove the field instead)", ctx)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, ps.errf(m.at("ticket"), "%s: ticket: bad regexp %q: %v", ctx, expr, err)
	}
	return re, nil
}

func (ps parser) approval(m mapping, ctx string, raw *rawApproval) (*ApprovalRule, error) {
	n, set := m.fields["approval"]
	if !set {
		return nil, nil
	}
	am, err := ps.mappingOf(n, ctx, "approval", reflect.TypeFor[rawApproval]())
	if err != nil {
		return nil, err
	}
	actx := ctx + ": approval"
	if raw == nil {
		return nil, ps.errf(n, "%s: empty (remove the field for no approval)", actx)
	}
	a := &ApprovalRule{Count: 1}
	if a.Approvers, err = ps.names(am, actx, "approvers", "group", raw.Approvers); err != nil {
		return nil, err
	}
	if len(a.Approvers) == 0 {
		return nil, ps.errf(am.at("approvers"), "%s: approvers: at least one group is required", actx)
	}
	if raw.Count != nil {
		if *raw.Count < 1 {
			return nil, ps.errf(am.at("count"), "%s: count %d must be at least 1", actx, *raw.Count)
		}
		a.Count = *raw.Count
	}
	aan, set := am.fields["auto_approve"]
	if !set {
		return a, nil
	}
	aam, err := ps.mappingOf(aan, actx, "auto_approve", reflect.TypeFor[rawAutoApprove]())
	if err != nil {
		return nil, err
	}
	aactx := actx + ": auto_approve"
	if raw.AutoApprove == nil || raw.AutoApprove.Ticket == "" && raw.AutoApprove.Schedule == "" {
		return nil, ps.errf(aan, "%s: ticket or schedule is required", aactx)
	}
	aa := &AutoApproveRule{}
	if aa.Ticket, err = ps.regexp(aam, aactx, raw.AutoApprove.Ticket); err != nil {
		return nil, err
	}
	if _, set := aam.fields["schedule"]; set {
		if aa.Schedule, err = ParseSchedule(raw.AutoApprove.Schedule); err != nil {
			return nil, ps.errf(aam.at("schedule"), "%s: %v", aactx, err)
		}
	}
	a.AutoApprove = aa
	return a, nil
}

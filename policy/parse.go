package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/sshkey"
)

// Limits and defaults of the policy file; docs/policy.md documents them.
const (
	DefaultTTL        = 10 * time.Minute
	DefaultMaxTTL     = time.Hour
	MaxTTLLimit       = 24 * time.Hour
	DefaultRequestTTL = 30 * time.Minute
	DefaultRedeemTTL  = 10 * time.Minute
	// MaxWaitLimit bounds request_ttl and redeem_ttl.
	MaxWaitLimit = 7 * 24 * time.Hour
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

// The raw* types mirror the file. Parse decodes into them strictly
// (KnownFields), and the node walk derives its field lists from their tags,
// so the two cannot drift apart.
type rawPolicy struct {
	Users    map[string]rawUser `yaml:"users"`
	Admins   rawAdmins          `yaml:"admins"`
	Auditors rawAuditors        `yaml:"auditors"`
	Hosts    map[string]rawHost `yaml:"hosts"`
	Roles    []rawRole          `yaml:"roles"`
}

type rawUser struct {
	Groups []string `yaml:"groups"`
	Keys   []string `yaml:"keys"`
}

type rawAdmins struct {
	Groups           []string `yaml:"groups"`
	MayRequestAccess bool     `yaml:"may_request_access"`
}

type rawAuditors struct {
	Groups []string `yaml:"groups"`
}

type rawHost struct {
	Address string            `yaml:"address"`
	Labels  map[string]string `yaml:"labels"`
	HostKey string            `yaml:"host_key"`
}

type rawRole struct {
	Name            string           `yaml:"name"`
	Groups          []string         `yaml:"groups"`
	Hosts           rawSelector      `yaml:"hosts"`
	Logins          []string         `yaml:"logins"`
	TTL             string           `yaml:"ttl"`
	MaxTTL          string           `yaml:"max_ttl"`
	Justification   rawJustification `yaml:"justification"`
	Extensions      []string         `yaml:"extensions"`
	SourceAddresses []string         `yaml:"source_addresses"`
	ForceCommand    string           `yaml:"force_command"`
	RecordInput     bool             `yaml:"record_input"`
	Approval        *rawApproval     `yaml:"approval"`
	RequestTTL      string           `yaml:"request_ttl"`
	RedeemTTL       string           `yaml:"redeem_ttl"`
	BreakGlass      bool             `yaml:"break_glass"`
}

type rawSelector struct {
	Names  []string          `yaml:"names"`
	Labels map[string]string `yaml:"labels"`
}

type rawJustification struct {
	MinLength *int   `yaml:"min_length"`
	Ticket    string `yaml:"ticket"`
}

type rawApproval struct {
	Approvers   []string        `yaml:"approvers"`
	Count       *int            `yaml:"count"`
	AutoApprove *rawAutoApprove `yaml:"auto_approve"`
}

type rawAutoApprove struct {
	Ticket   string `yaml:"ticket"`
	Schedule string `yaml:"schedule"`
}

// mapping is a YAML mapping node with its values by key.
type mapping struct {
	node   *yaml.Node
	fields map[string]*yaml.Node
	keys   []*yaml.Node // key nodes in file order
}

// at returns the value node of key, or the mapping itself when key is
// absent, so that an error about a missing or defaulted field still points
// at the right place.
func (m mapping) at(key string) *yaml.Node {
	if n, ok := m.fields[key]; ok {
		return n
	}
	return m.node
}

// item returns the i-th element of the sequence under key, or the best
// enclosing node.
func (m mapping) item(key string, i int) *yaml.Node {
	n := m.at(key)
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

// parser carries the file name into every error.
type parser struct {
	name string
}

func (ps parser) errf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	if line <= 0 {
		return fmt.Errorf("%s: %s", ps.name, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%s:%d: %s", ps.name, line, fmt.Sprintf(format, args...))
}

// Parse parses and validates a policy file. name is used only in error
// messages, which look like `policy.yaml:12: role "x": unknown field "foo"`.
// Unknown fields, duplicate names, bad values and an empty document are all
// errors; see docs/policy.md for the format and its rules.
func Parse(name string, data []byte) (*Policy, error) {
	ps := parser{name: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ps.errf(nil, "empty policy")
		}
		return nil, ps.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, ps.yamlError(err)
		}
		return nil, ps.errf(&extra, "more than one YAML document")
	}
	if err := ps.rejectAliases(&doc); err != nil {
		return nil, err
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" || root.Kind == yaml.MappingNode && len(root.Content) == 0 {
		return nil, ps.errf(root, "empty policy")
	}
	// Check the shape first (kinds, unknown and duplicate keys) so that
	// those errors name their context; the yaml package's own messages
	// ("field foo not found in type policy.rawRole") would not.
	if err := ps.shape(root, reflect.TypeFor[rawPolicy](), "", "policy"); err != nil {
		return nil, err
	}
	var raw rawPolicy
	if err := root.Decode(&raw); err != nil {
		return nil, ps.yamlError(err)
	}
	// Node.Decode ignores KnownFields; this strict decode is a second,
	// independent check that the shape walk missed no field.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&rawPolicy{}); err != nil {
		return nil, ps.yamlError(err)
	}
	top, err := ps.mappingOf(root, "", "policy", reflect.TypeFor[rawPolicy]())
	if err != nil {
		return nil, err
	}
	return ps.build(top, &raw)
}

// yamlError turns the yaml package's "yaml: line 3: ..." and TypeError
// lists into "name:3: ..." lines.
func (ps parser) yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, e := range te.Errors {
			errs = append(errs, ps.lineError(e))
		}
		return errors.Join(errs...)
	}
	return ps.lineError(strings.TrimPrefix(err.Error(), "yaml: "))
}

func (ps parser) lineError(msg string) error {
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return fmt.Errorf("%s:%d: %s", ps.name, n, text)
			}
		}
	}
	return fmt.Errorf("%s: %s", ps.name, msg)
}

// rejectAliases refuses anchors' aliases and merge keys: a policy should
// read the same to a person as to the parser.
func (ps parser) rejectAliases(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return ps.errf(n, "yaml aliases are not allowed (found *%s)", n.Value)
	}
	for _, c := range n.Content {
		if err := ps.rejectAliases(c); err != nil {
			return err
		}
	}
	return nil
}

// yamlFields lists the yaml keys of a raw struct type.
func yamlFields(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if k, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// prefix renders an error context such as `role "x": approval: `.
func prefix(ctx string) string {
	if ctx == "" {
		return ""
	}
	return ctx + ": "
}

// mappingOf checks that n is a mapping (null counts as empty) whose keys
// are unique scalars; when t is not nil the keys must be t's yaml fields.
func (ps parser) mappingOf(n *yaml.Node, ctx, what string, t reflect.Type) (mapping, error) {
	m := mapping{node: n, fields: map[string]*yaml.Node{}}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return m, nil
	}
	if n.Kind != yaml.MappingNode {
		return m, ps.errf(n, "%s%s: want a mapping, got %s", prefix(ctx), what, kindName(n))
	}
	var allowed []string
	if t != nil {
		allowed = yamlFields(t)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return m, ps.errf(k, "%s%s: keys must be plain strings", prefix(ctx), what)
		}
		if t != nil && !slices.Contains(allowed, k.Value) {
			return m, ps.errf(k, "%sunknown field %q", prefix(ctx), k.Value)
		}
		if first, dup := m.fields[k.Value]; dup {
			return m, ps.errf(k, "%s%s: duplicate key %q (first at line %d)", prefix(ctx), what, k.Value, first.Line)
		}
		m.fields[k.Value] = v
		m.keys = append(m.keys, k)
	}
	return m, nil
}

// shape checks n against the raw type t: mappings where t is a struct or a
// map (struct keys known, all keys unique), lists where t is a slice, single
// values elsewhere. ctx names the enclosing object in errors, what the
// field being checked.
func (ps parser) shape(n *yaml.Node, t reflect.Type, ctx, what string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, err := ps.mappingOf(n, ctx, what, t)
		if err != nil {
			return err
		}
		for _, k := range m.keys {
			f, _ := fieldByTag(t, k.Value)
			sub := k.Value
			if ctx != "" {
				sub = ctx + ": " + k.Value
			}
			// A struct inside a struct gets the longer context; a
			// collection keeps ours and names itself as what.
			inner := ctx
			if f.Type.Kind() == reflect.Struct || f.Type.Kind() == reflect.Pointer {
				inner = sub
			}
			if err := ps.shape(m.fields[k.Value], f.Type, inner, k.Value); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, err := ps.mappingOf(n, ctx, what, nil)
		if err != nil {
			return err
		}
		for _, k := range m.keys {
			if k.Tag == "!!null" {
				return ps.errf(k, "%s%s: empty key", prefix(ctx), what)
			}
			sub := prefix(ctx) + what
			if t.Elem().Kind() == reflect.Struct {
				sub = fmt.Sprintf("%s %q", strings.TrimSuffix(what, "s"), k.Value)
			}
			if err := ps.shape(m.fields[k.Value], t.Elem(), sub, k.Value); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return ps.errf(n, "%s%s: want a list, got %s", prefix(ctx), what, kindName(n))
		}
		for i, item := range n.Content {
			sub, itemWhat := ctx, fmt.Sprintf("%s[%d]", what, i)
			if t.Elem().Kind() == reflect.Struct {
				sub, itemWhat = roleContext(item, i), "definition"
			}
			if err := ps.shape(item, t.Elem(), sub, itemWhat); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return ps.errf(n, "%s%s: want a single value, got %s", prefix(ctx), what, kindName(n))
		}
	}
	return nil
}

// fieldByTag finds the struct field with the given yaml key.
func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if k, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); k == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
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

// section checks a named sub-mapping of m, if present.
func (ps parser) section(m mapping, key, ctx string, t reflect.Type) (mapping, error) {
	n, ok := m.fields[key]
	if !ok {
		return mapping{node: m.node, fields: map[string]*yaml.Node{}}, nil
	}
	return ps.mappingOf(n, ctx, key, t)
}

// build validates the decoded file and turns it into a Policy, in file
// order so that the first error reported is the first in the file.
func (ps parser) build(top mapping, raw *rawPolicy) (*Policy, error) {
	p := &Policy{Users: map[string]User{}, Hosts: map[string]Host{}}

	usersNode, err := ps.section(top, "users", "", nil)
	if err != nil {
		return nil, err
	}
	keyOwner := map[string]string{}
	for _, k := range usersNode.keys {
		u, err := ps.user(k, usersNode.fields[k.Value], raw.Users[k.Value], keyOwner)
		if err != nil {
			return nil, err
		}
		p.Users[u.Name] = u
	}

	hostsNode, err := ps.section(top, "hosts", "", nil)
	if err != nil {
		return nil, err
	}
	for _, k := range hostsNode.keys {
		h, err := ps.host(k, hostsNode.fields[k.Value], raw.Hosts[k.Value])
		if err != nil {
			return nil, err
		}
		p.Hosts[h.Name] = h
	}

	admins, err := ps.section(top, "admins", "", reflect.TypeFor[rawAdmins]())
	if err != nil {
		return nil, err
	}
	if p.Admins.Groups, err = ps.names(admins, "admins", "groups", "group", raw.Admins.Groups); err != nil {
		return nil, err
	}
	p.Admins.MayRequestAccess = raw.Admins.MayRequestAccess

	auditors, err := ps.section(top, "auditors", "", reflect.TypeFor[rawAuditors]())
	if err != nil {
		return nil, err
	}
	if p.Auditors, err = ps.names(auditors, "auditors", "groups", "group", raw.Auditors.Groups); err != nil {
		return nil, err
	}

	if n, ok := top.fields["roles"]; ok && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		if n.Kind != yaml.SequenceNode {
			return nil, ps.errf(n, "roles: want a list, got %s", kindName(n))
		}
		firstAt := map[string]int{}
		for i, rn := range n.Content {
			r, err := ps.role(rn, i, raw.Roles[i])
			if err != nil {
				return nil, err
			}
			if line, dup := firstAt[r.Name]; dup {
				return nil, ps.errf(rn, "duplicate role %q (first at line %d)", r.Name, line)
			}
			firstAt[r.Name] = rn.Line
			p.Roles = append(p.Roles, r)
		}
	}
	return p, nil
}

// names validates a list of names of one kind under key in m, rejecting
// duplicates.
func (ps parser) names(m mapping, ctx, key, kind string, list []string) ([]string, error) {
	if n, ok := m.fields[key]; ok && n.Kind != yaml.SequenceNode && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil, ps.errf(n, "%s%s: want a list, got %s", prefix(ctx), key, kindName(n))
	}
	for i, s := range list {
		if err := ValidName(kind, s); err != nil {
			return nil, ps.errf(m.item(key, i), "%s%s: %v", prefix(ctx), key, err)
		}
		if slices.Contains(list[:i], s) {
			return nil, ps.errf(m.item(key, i), "%s%s: %q listed twice", prefix(ctx), key, s)
		}
	}
	return slices.Clone(list), nil
}

func (ps parser) user(k, v *yaml.Node, raw rawUser, keyOwner map[string]string) (User, error) {
	if err := ValidName("user", k.Value); err != nil {
		return User{}, ps.errf(k, "users: %v", err)
	}
	ctx := fmt.Sprintf("user %q", k.Value)
	m, err := ps.mappingOf(v, ctx, "definition", reflect.TypeFor[rawUser]())
	if err != nil {
		return User{}, err
	}
	u := User{Name: k.Value}
	if u.Groups, err = ps.names(m, ctx, "groups", "group", raw.Groups); err != nil {
		return User{}, err
	}
	for i, text := range raw.Keys {
		at := m.item("keys", i)
		key, err := parseKey(text)
		if err != nil {
			return User{}, ps.errf(at, "%s: keys[%d]: %v", ctx, i, err)
		}
		wire := string(key.Marshal())
		if owner, taken := keyOwner[wire]; taken {
			return User{}, ps.errf(at, "%s: keys[%d]: key already belongs to user %q", ctx, i, owner)
		}
		keyOwner[wire] = u.Name
		u.Keys = append(u.Keys, key)
	}
	return u, nil
}

// parseKey accepts one public key in authorized_keys form without options,
// by jitssh's one key rule (sshkey), so that the policy file accepts exactly
// the keys the CA and the API accept.
func parseKey(text string) (ssh.PublicKey, error) {
	return sshkey.ParseAuthorized(text)
}

func (ps parser) host(k, v *yaml.Node, raw rawHost) (Host, error) {
	if err := ValidName("host", k.Value); err != nil {
		return Host{}, ps.errf(k, "hosts: %v", err)
	}
	ctx := fmt.Sprintf("host %q", k.Value)
	m, err := ps.mappingOf(v, ctx, "definition", reflect.TypeFor[rawHost]())
	if err != nil {
		return Host{}, err
	}
	if err := validAddress(raw.Address); err != nil {
		return Host{}, ps.errf(m.at("address"), "%s: address: %v", ctx, err)
	}
	labelsNode, err := ps.section(m, "labels", ctx, nil)
	if err != nil {
		return Host{}, err
	}
	if err := ps.labels(labelsNode, ctx+": labels"); err != nil {
		return Host{}, err
	}
	h := Host{Name: k.Value, Address: raw.Address, Labels: raw.Labels}
	if h.Labels == nil {
		h.Labels = map[string]string{}
	}
	if raw.HostKey != "" {
		if h.HostKey, err = parseKey(raw.HostKey); err != nil {
			return Host{}, ps.errf(m.at("host_key"), "%s: host_key: %v", ctx, err)
		}
	}
	return h, nil
}

// validAddress accepts host:port with a non-empty host and a port 1..65535.
func validAddress(addr string) error {
	if addr == "" {
		return errors.New("required (host:port)")
	}
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if h == "" || strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }) {
		return fmt.Errorf("%q: bad host part", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
		return fmt.Errorf("%q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

// labels checks label keys and values: keys are names, values printable.
func (ps parser) labels(m mapping, ctx string) error {
	for _, k := range m.keys {
		v := m.fields[k.Value]
		if k.Value == "" || !validText(k.Value) || strings.ContainsFunc(k.Value, func(r rune) bool { return r == ' ' || r == '=' }) || len(k.Value) > MaxNameLength {
			return ps.errf(k, "%s: bad label name %q", ctx, k.Value)
		}
		if v.Kind != yaml.ScalarNode || !validText(v.Value) || len(v.Value) > 256 {
			return ps.errf(v, "%s: label %q: want a short single-line string", ctx, k.Value)
		}
	}
	return nil
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
	if r.Logins, err = ps.names(m, ctx, "logins", "login", raw.Logins); err != nil {
		return Role{}, err
	}
	if len(r.Logins) == 0 {
		return Role{}, ps.errf(m.at("logins"), "%s: logins: at least one login is required", ctx)
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

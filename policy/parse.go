package policy

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
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

// The raw* types mirror the file. Parse decodes into them strictly
// (KnownFields), and the node walk derives its field lists from their tags,
// so the two cannot drift apart.
type rawPolicy struct {
	Users    map[string]rawUser `yaml:"users"`
	Admins   rawAdmins          `yaml:"admins"`
	Auditors rawAuditors        `yaml:"auditors"`
	Hosts    map[string]rawHost `yaml:"hosts"`
	Roles    []rawRole          `yaml:"roles"`
	Console  rawConsole         `yaml:"console"`
	SSO      rawSSO             `yaml:"sso"`
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
	IdleTimeout     string           `yaml:"idle_timeout"`
	// Account, AccountGroups, Sudo and Shell describe an ephemeral
	// role's one-time account (account.go). Sudo is "all" or a list, so
	// it stays a node and account.go reads it.
	Account       string    `yaml:"account"`
	AccountGroups []string  `yaml:"account_groups"`
	Sudo          yaml.Node `yaml:"sudo"`
	Shell         string    `yaml:"shell"`
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
			// A null item ("-" alone) decodes to no element at all.
			if rn.Kind != yaml.MappingNode || i >= len(raw.Roles) {
				return nil, ps.errf(rn, "roles[%d]: want a mapping, got %s", i, kindName(rn))
			}
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
	if p.Console, err = ps.console(top, raw.Console); err != nil {
		return nil, err
	}
	if p.SSO, err = ps.sso(top, raw.SSO); err != nil {
		return nil, err
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

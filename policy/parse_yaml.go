package policy

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

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
	if t == reflect.TypeFor[yaml.Node]() {
		// A field of several shapes (sudo: all or a list): its parser
		// checks it.
		return nil
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

// section checks a named sub-mapping of m, if present.
func (ps parser) section(m mapping, key, ctx string, t reflect.Type) (mapping, error) {
	n, ok := m.fields[key]
	if !ok {
		return mapping{node: m.node, fields: map[string]*yaml.Node{}}, nil
	}
	return ps.mappingOf(n, ctx, key, t)
}

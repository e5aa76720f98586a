package policy

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

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

package policy

import (
	"fmt"
	"reflect"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/sshkey"
)

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

package apiserver_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/apiserver"
)

// FuzzDecodeBodies feeds arbitrary bytes to the strict decoder of every API
// body: it never panics, and what it accepts re-encodes to a body it accepts
// again with the same value (no field read one way and written another).
func FuzzDecodeBodies(f *testing.F) {
	for _, seed := range []string{
		`{"host":"web1","login":"deploy","reason":"deploy release 42","ttl":"10m","public_key":"ssh-ed25519 AAAA"}`,
		`{"host":"db1","login":"root","reason":"INC-1","break_glass":true,"user":"alice"}`,
		`{"user":"alice","nonce":"n","public_key":"k","signature":"s","ttl":"1h"}`,
		`{"reason":"looks fine"}`,
		`{"name":"zoe","groups":["dev"],"keys":["ssh-ed25519 AAAA"]}`,
		`{"serial":"123","reason":"lost laptop"}`,
		`{"host":"web1"} {"host":"db1"}`,
		`{"host":"web1","principals":["*"]}`,
		`{"serial":123}`,
		`[]`, `null`, ``, `{"host":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, newV := range []func() any{
			func() any { return new(api.CreateRequestBody) },
			func() any { return new(api.LoginRequest) },
			func() any { return new(api.ChallengeRequest) },
			func() any { return new(api.DecisionBody) },
			func() any { return new(api.UserBody) },
			func() any { return new(api.RevokeBody) },
		} {
			v := newV()
			if err := apiserver.DecodeStrict(body, v); err != nil {
				continue
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("re-encode %T: %v", v, err)
			}
			w := newV()
			if err := apiserver.DecodeStrict(again, w); err != nil {
				t.Fatalf("%T accepted %q but not its own encoding %q: %v", v, body, again, err)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("%T round trip changed the value: %+v != %+v", v, v, w)
			}
		}
	})
}

package apiserver_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/apiserver"
)

// bodyTypes are the types of every API request body.
var bodyTypes = []func() any{
	func() any { return new(api.CreateRequestBody) },
	func() any { return new(api.LoginRequest) },
	func() any { return new(api.ChallengeRequest) },
	func() any { return new(api.DecisionBody) },
	func() any { return new(api.UserBody) },
	func() any { return new(api.RevokeBody) },
}

// TestDecodeStrictRefuses: bodies that another JSON reader (a proxy, a log)
// would read differently from encoding/json are refused.
func TestDecodeStrictRefuses(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{name: "repeated key", body: `{"host":"web1","login":"deploy","reason":"benign reason","host":"db1"}`},
		{name: "key in another case", body: `{"HOST":"db1","login":"deploy","reason":"benign reason"}`},
		{name: "case twin of a key", body: `{"host":"web1","Host":"db1"}`},
		{name: "invalid UTF-8", body: "{\"host\":\"db1\",\"reason\":\"a\xffb\"}"},
		{name: "null", body: `null`},
		{name: "trailing object", body: `{"host":"web1"} {"host":"db1"}`},
		{name: "unknown field", body: `{"host":"web1","principals":["*"]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v api.CreateRequestBody
			if err := apiserver.DecodeStrict([]byte(tc.body), &v); err == nil {
				t.Fatalf("DecodeStrict(%q) accepted %+v", tc.body, v)
			}
		})
	}
	var v api.CreateRequestBody
	if err := apiserver.DecodeStrict([]byte(`{"host":"db1","login":"deploy","reason":"INC-1 disk full","ttl":"10m","public_key":"k"}`), &v); err != nil || v.Host != "db1" {
		t.Fatalf("a plain body: %+v, %v", v, err)
	}
}

// topKeys lists the keys of body's top-level object in order, repeats
// included, by walking its tokens.
func topKeys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	var keys []string
	depth, wantKey := 0, false
	for {
		tok, err := dec.Token()
		if err != nil {
			return keys
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			wantKey = depth == 1 && tok == json.Delim('{')
			continue
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if s, ok := tok.(string); ok && depth == 1 && wantKey {
			keys = append(keys, s)
			wantKey = false
			continue
		}
		wantKey = depth == 1
	}
}

// FuzzDecodeBodies feeds arbitrary bytes to the strict decoder of every API
// body: it never panics; what it accepts is valid UTF-8 whose top-level
// keys are each the exact wire name of a field, given once; and it
// re-encodes to a body it accepts again with the same value (no field read
// one way and written another). Seeds: testdata/fuzz/FuzzDecodeBodies.
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
		for _, newV := range bodyTypes {
			v := newV()
			if err := apiserver.DecodeStrict(body, v); err != nil {
				continue
			}
			if !utf8.Valid(body) {
				t.Fatalf("%T accepted invalid UTF-8 %q", v, body)
			}
			names := wireNames(reflect.TypeOf(v).Elem())
			keys := topKeys(t, body)
			for i, k := range keys {
				if !names[k] || slices.Contains(keys[:i], k) {
					t.Fatalf("%T accepted %q with key %q unknown or repeated (keys %q)", v, body, k, keys)
				}
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

// wireNames are the json tag names of struct type t's fields.
func wireNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	return names
}

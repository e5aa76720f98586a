package api_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
)

// TestParseAccountRequest: each operation takes its own fields, valid ones
// pass, and every kind of bad input is refused with an error naming it.
func TestParseAccountRequest(t *testing.T) {
	create := `"login":"jit-alice-4f2k","grant":"req_01","uid_min":61000,"uid_max":64999`
	tests := []struct {
		name, op, body string
		wantErr        string // "" = accepted
	}{
		{"create minimal", "create", `{` + create + `,"shell":"/bin/bash"}`, ""},
		{"create full", "create", `{` + create + `,"shell":"/bin/sh","groups":["adm","dev-ops"],"sudo":["/usr/bin/systemctl restart nginx","/bin/ls"]}`, ""},
		{"create sudo all", "create", `{` + create + `,"shell":"/bin/sh","sudo":["ALL"]}`, ""},
		{"remove", "remove", `{"login":"jit-alice-4f2k","grant":"req_01","uid":61000}`, ""},
		{"reap", "reap", `{"keep":["jit-a","jit-b_c"]}`, ""},
		// jit-b.c and jit-bc would share the sudoers file jitssh-jit-bc.
		{"dot in login", "remove", `{"login":"jit-b.c","grant":"req_01","uid":61000}`, "contains '.'"},
		{"reap none kept", "reap", `{}`, ""},
		{"list", "list", `{}`, ""},
		{"unknown op", "shell", `{}`, "unknown operation"},
		{"op with args", "list ; id", `{}`, "unknown operation"},
		{"empty op", "", `{}`, "unknown operation"},
		{"empty body", "list", ``, "not one JSON object"},
		{"array", "list", `[]`, "not one JSON object"},
		{"unknown field", "list", `{"x":1}`, "unknown"},
		{"case variant", "remove", `{"Login":"jit-a","grant":"g","uid":61000}`, "unknown or repeated"},
		{"repeated", "remove", `{"login":"jit-a","login":"jit-b","grant":"g","uid":61000}`, "unknown or repeated"},
		{"trailing", "list", `{} {}`, "data after"},
		{"trailing garbage", "list", `{}x`, "data after"},
		{"too large", "reap", `{"keep":["` + strings.Repeat("a", api.AccountMaxRequestBytes) + `"]}`, "longer than"},
		{"field of other op", "list", `{"login":"jit-a"}`, "not taken by list"},
		{"keep on create", "create", `{` + create + `,"shell":"/bin/sh","keep":["jit-a"]}`, "not taken by create"},
		{"uid on create", "create", `{` + create + `,"shell":"/bin/sh","uid":61000}`, "not taken by create"},
		{"no jit prefix", "create", `{"login":"alice","grant":"req_01","uid_min":61000,"uid_max":64999,"shell":"/bin/sh"}`, "does not start with"},
		{"prefix only", "remove", `{"login":"jit-","grant":"g","uid":61000}`, "does not start with"},
		{"upper case", "remove", `{"login":"jit-Alice","grant":"g","uid":61000}`, "not a POSIX name"},
		{"login too long", "remove", `{"login":"jit-` + strings.Repeat("a", 29) + `","grant":"g","uid":61000}`, "longer than 32"},
		{"login newline", "remove", `{"login":"jit-a\nroot","grant":"g","uid":61000}`, "not a POSIX name"},
		{"login colon", "remove", `{"login":"jit-a:0","grant":"g","uid":61000}`, "not a POSIX name"},
		{"grant missing", "remove", `{"login":"jit-a","uid":61000}`, "grant"},
		{"grant slash", "remove", `{"login":"jit-a","grant":"../x","uid":61000}`, "grant"},
		{"uid missing", "remove", `{"login":"jit-a","grant":"g"}`, "uid 0"},
		{"uid system", "remove", `{"login":"jit-a","grant":"g","uid":0}`, "uid 0"},
		{"uid negative", "remove", `{"login":"jit-a","grant":"g","uid":-5}`, "uid -5"},
		{"uid huge", "remove", `{"login":"jit-a","grant":"g","uid":4294967295}`, "outside"},
		{"range reversed", "create", `{"login":"jit-a","grant":"g","uid_min":62000,"uid_max":61000,"shell":"/bin/sh"}`, "uid range"},
		{"range system", "create", `{"login":"jit-a","grant":"g","uid_min":1,"uid_max":61000,"shell":"/bin/sh"}`, "uid range"},
		{"range missing", "create", `{"login":"jit-a","grant":"g","shell":"/bin/sh"}`, "uid range"},
		{"shell relative", "create", `{` + create + `,"shell":"bash"}`, "shell"},
		{"shell missing", "create", `{` + create + `}`, "shell"},
		{"shell dotdot", "create", `{` + create + `,"shell":"/bin/../tmp/x"}`, "shell"},
		{"shell space", "create", `{` + create + `,"shell":"/bin/sh -c"}`, "shell"},
		{"group bad", "create", `{` + create + `,"shell":"/bin/sh","groups":["a b"]}`, "group"},
		{"group repeated", "create", `{` + create + `,"shell":"/bin/sh","groups":["adm","adm"]}`, "repeated"},
		{"group managed", "create", `{` + create + `,"shell":"/bin/sh","groups":["jitssh-ephemeral"]}`, "managed group"},
		{"sudo relative", "create", `{` + create + `,"shell":"/bin/sh","sudo":["ls"]}`, "absolute path"},
		{"sudo all mixed", "create", `{` + create + `,"shell":"/bin/sh","sudo":["ALL","/bin/ls"]}`, "only entry"},
		{"sudo newline", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls\nroot ALL=(ALL) ALL"]}`, "contains"},
		{"sudo comma", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls, ALL"]}`, "contains"},
		{"sudo colon", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls : ALL"]}`, "contains"},
		{"sudo equals", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls x=y"]}`, "contains"},
		{"sudo backslash", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls \\"]}`, "contains"},
		{"sudo hash", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls #0"]}`, "contains"},
		{"sudo wildcard", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/cat /var/log/*"]}`, "contains"},
		{"sudo regex", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/cat ^/etc/.*$"]}`, "contains"},
		{"sudo tab", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls\t-l"]}`, "contains"},
		{"sudo double space", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls  -l"]}`, "spaces"},
		{"sudo unicode", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/ls é"]}`, "contains"},
		{"sudo empty entry", "create", `{` + create + `,"shell":"/bin/sh","sudo":[""]}`, "empty"},
		{"sudo unclean path", "create", `{` + create + `,"shell":"/bin/sh","sudo":["/bin/../bin/sh"]}`, "clean absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := api.ParseAccountRequest(tt.op, strings.NewReader(tt.body))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %+v, want an error containing %q", req, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(req, api.AccountRequest{}) {
				t.Fatalf("error %v came with a request %+v", err, req)
			}
		})
	}
}

// TestAccountSudoersName: sudo ignores names with a dot, so none has one.
func TestAccountSudoersName(t *testing.T) {
	for login, want := range map[string]string{"jit-alice-4f2k": "jitssh-jit-alice-4f2k", "jit-a.b.c": "jitssh-jit-abc"} {
		if got := api.AccountSudoersName(login); got != want {
			t.Errorf("AccountSudoersName(%q) = %q, want %q", login, got, want)
		}
	}
}

// FuzzParseAccountRequest: the parser never panics; whatever it accepts
// re-encodes to a request it accepts again unchanged, and no accepted text
// field carries a byte that could change the meaning of a passwd, group or
// sudoers line or of a command line (newline, ':', ',', '=', '\', '#',
// control characters), nor a login without the ephemeral prefix.
func FuzzParseAccountRequest(f *testing.F) {
	seeds := []struct{ op, body string }{
		{"create", `{"login":"jit-alice-4f2k","grant":"req_01","uid_min":61000,"uid_max":64999,"shell":"/bin/bash","groups":["adm"],"sudo":["/usr/bin/systemctl restart nginx"]}`},
		{"create", `{"login":"jit-a","grant":"g","uid_min":61000,"uid_max":61000,"shell":"/bin/sh","sudo":["ALL"]}`},
		{"remove", `{"login":"jit-a.b","grant":"req_x","uid":61001}`},
		{"reap", `{"keep":["jit-a","jit-b"]}`},
		{"list", `{}`},
		{"list", `{} `},
		{"create", `{"login":"jit-a","sudo":["/bin/ls\n"]}`},
		{"remove", `{"login":"root","grant":"g","uid":0}`},
		{"nope", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.op, s.body)
	}
	f.Fuzz(func(t *testing.T, op, body string) {
		req, err := api.ParseAccountRequest(op, strings.NewReader(body))
		if err != nil {
			if !reflect.DeepEqual(req, api.AccountRequest{}) {
				t.Fatalf("error %v came with a request %+v", err, req)
			}
			return
		}
		text := append([]string{req.Login, req.Grant, req.Shell}, req.Groups...)
		text = append(append(text, req.Sudo...), req.Keep...)
		for _, s := range text {
			if strings.ContainsAny(s, "\n\r\x00:,=\\#") {
				t.Fatalf("accepted field %q of %s", s, body)
			}
			for _, c := range s {
				if c < ' ' || c > '~' {
					t.Fatalf("accepted non-printable %q in %q", c, s)
				}
			}
		}
		for _, l := range append([]string{req.Login}, req.Keep...) {
			if l != "" && (!strings.HasPrefix(l, api.AccountLoginPrefix) || len(l) > api.AccountMaxLoginLength) {
				t.Fatalf("accepted login %q", l)
			}
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := api.ParseAccountRequest(op, strings.NewReader(string(again)))
		if err != nil || !reflect.DeepEqual(req, req2) {
			t.Fatalf("re-encoded %s parses as %+v, %v; first %+v", again, req2, err, req)
		}
	})
}

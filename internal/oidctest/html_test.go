package oidctest

import (
	"html"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParsePage(t *testing.T) {
	for _, c := range []struct {
		name   string
		doc    string
		title  string
		errors []string
		forms  []form
	}{
		{
			name:  "login page",
			doc:   `<!DOCTYPE html><html><head><title>Sign-in</title><style>p > a {x:1}</style></head><body><p class="error">wrong user name or password</p><form id="login" method="post" action="/interaction/abc/login"><input type="text" name="login"><input type="password" name="password"><button type="submit" name="go" value="1">Sign in</button></form></body></html>`,
			title: "Sign-in", errors: []string{"wrong user name or password"},
			forms: []form{{ID: "login", Method: "post", Action: "/interaction/abc/login", Fields: url.Values{"login": {""}, "password": {""}}}},
		},
		{
			name:  "quoting, entities and case",
			doc:   `<FORM ID='f' Method=POST action="/a?x=1&amp;y=2"><INPUT type=hidden name=xsrf value=ab&quot;c><input name="q" value='it&#39;s'><input type="checkbox" name="c"><input type=checkbox name=d checked><input type=radio name=r value=v checked/><input name=off disabled value=1></FORM>`,
			forms: []form{{ID: "f", Method: "post", Action: "/a?x=1&y=2", Fields: url.Values{"xsrf": {`ab"c`}, "q": {"it's"}, "d": {"on"}, "r": {"v"}}}},
		},
		{
			name:  "comments and scripts hide markup",
			doc:   `<!-- <form id="no"> --><script>var s = "<form id='no2'>";</script><form id="yes"><input type="hidden" name="a" value="1"></form>`,
			forms: []form{{ID: "yes", Fields: url.Values{"a": {"1"}}}},
		},
		{
			name:  "input outside its form names it",
			doc:   `<input form="later" name="code" value="X"><form id="later" method="post" action="/d"></form><button form="later">Go</button>`,
			forms: []form{{ID: "later", Method: "post", Action: "/d", Fields: url.Values{"code": {"X"}}}},
		},
		{
			name:   "nested error text, stray angle brackets",
			doc:    `<div class="box error"><b>code</b> &lt;unknown&gt; <div>x</div></div> a < b <p>ok</p>`,
			errors: []string{"code <unknown> x"},
		},
		{
			name:  "unterminated",
			doc:   `<form id="x" action="/a"><input name="n" value="unterminated`,
			forms: []form{{ID: "x", Action: "/a", Fields: url.Values{}}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			pg := parsePage(c.doc)
			if pg.Title != c.title || !reflect.DeepEqual(pg.Errors, c.errors) || !reflect.DeepEqual(pg.Forms, c.forms) {
				t.Errorf("parsePage:\n got %q %q %+v\nwant %q %q %+v", pg.Title, pg.Errors, pg.Forms, c.title, c.errors, c.forms)
			}
		})
	}
}

// FuzzParsePage: any page parses without panicking, and a value written
// with the provider's escaping comes back unchanged.
func FuzzParsePage(f *testing.F) {
	for _, s := range []string{
		`<form id="login" method="post" action="/i/1/login"><input name="login"></form>`,
		`<p class="error">x</p><!-- <form> -->`,
		`<input form=f name=a value=b><form id=f>`,
		`<script>"</script>`, `<<>><//>`, `<a b='c`, `<form id="a&amp;b">`,
	} {
		f.Add(s, "value & <more> \"quoted\" 'x'")
	}
	f.Fuzz(func(t *testing.T, doc, value string) {
		parsePage(doc)
		if !strings.ContainsRune(value, 0) {
			pg := parsePage(`<form id="f" method="post"><input type="hidden" name="v" value="` + html.EscapeString(value) + `"></form>`)
			if len(pg.Forms) != 1 || pg.Forms[0].Fields.Get("v") != html.UnescapeString(html.EscapeString(value)) {
				t.Fatalf("value %q came back as %+v", value, pg.Forms)
			}
		}
	})
}

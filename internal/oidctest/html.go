package oidctest

import (
	"html"
	"net/url"
	"strings"
)

// form is one HTML form of a provider page: its id, action and method, and
// the values its named inputs would submit (hidden and text inputs with
// their value attribute, checked boxes; never buttons).
type form struct {
	ID, Action, Method string
	Fields             url.Values
}

// page is what the drivers need from a provider page.
type page struct {
	Title  string
	Errors []string // text of the elements whose class is "error"
	Forms  []form
}

// rawText are the elements whose content is not markup.
var rawText = map[string]bool{"script": true, "style": true, "title": true, "textarea": true}

// parsePage reads the forms, title and error messages of an HTML page. It
// is a small tokenizer, not a full HTML parser: enough for the provider's
// pages (and careful with comments, quoting, entities and raw text), and it
// never fails: what it cannot read it skips.
func parsePage(doc string) page {
	p := pageParser{open: -1, byID: map[string]int{}}
	for i := 0; i < len(doc); {
		lt := strings.IndexByte(doc[i:], '<')
		if lt < 0 {
			lt = len(doc) - i
		}
		if p.errTag != "" {
			p.errText.WriteString(doc[i : i+lt])
		}
		i += lt
		if i >= len(doc) {
			break
		}
		switch {
		case strings.HasPrefix(doc[i:], "<!--"):
			i = skipPast(doc, i+4, "-->")
			continue
		case strings.HasPrefix(doc[i:], "<!"), strings.HasPrefix(doc[i:], "<?"):
			i = skipPast(doc, i+2, ">")
			continue
		}
		t, next := readTag(doc, i)
		i = next
		switch {
		case t.name == "":
		case t.end:
			p.endTag(t)
		case rawText[t.name] && !t.selfClosing:
			text, after := readRaw(doc, i, t.name)
			i = after
			if t.name == "title" && p.pg.Title == "" {
				p.pg.Title = strings.TrimSpace(html.UnescapeString(text))
			}
		default:
			p.startTag(t)
		}
	}
	for _, in := range p.late {
		if f, ok := p.byID[in.form]; ok {
			p.pg.Forms[f].Fields.Add(in.name, in.value)
		}
	}
	return p.pg
}

// pageParser is parsePage's state between tags.
type pageParser struct {
	pg       page
	open     int // index of the form being read, or -1
	byID     map[string]int
	errTag   string // the element whose text is an error message
	errDepth int
	errText  strings.Builder
	late     []pendingInput // inputs naming a form by id
}

func (p *pageParser) endTag(t tag) {
	switch {
	case t.name == "form":
		p.open = -1
	case t.name == p.errTag:
		if p.errDepth--; p.errDepth == 0 {
			p.pg.Errors = append(p.pg.Errors, strings.Join(strings.Fields(html.UnescapeString(p.errText.String())), " "))
			p.errTag = ""
			p.errText.Reset()
		}
	}
}

func (p *pageParser) startTag(t tag) {
	switch {
	case t.name == p.errTag:
		p.errDepth++
	case p.errTag == "" && hasClass(t.attrs["class"], "error") && !voidElement(t.name) && !t.selfClosing:
		p.errTag, p.errDepth = t.name, 1
	}
	switch t.name {
	case "form":
		p.pg.Forms = append(p.pg.Forms, form{ID: t.attrs["id"], Action: t.attrs["action"], Method: strings.ToLower(t.attrs["method"]), Fields: url.Values{}})
		p.open = len(p.pg.Forms) - 1
		if id := t.attrs["id"]; id != "" {
			if _, dup := p.byID[id]; !dup {
				p.byID[id] = p.open
			}
		}
	case "input":
		name, value, ok := inputValue(t.attrs)
		switch {
		case !ok:
		case t.attrs["form"] != "":
			p.late = append(p.late, pendingInput{t.attrs["form"], name, value})
		case p.open >= 0:
			p.pg.Forms[p.open].Fields.Add(name, value)
		}
	}
}

type pendingInput struct{ form, name, value string }

// inputValue is what an input submits, and whether it submits at all.
func inputValue(attrs map[string]string) (name, value string, ok bool) {
	name = attrs["name"]
	if name == "" {
		return "", "", false
	}
	_, disabled := attrs["disabled"]
	switch typ := strings.ToLower(attrs["type"]); {
	case disabled:
		return "", "", false
	case typ == "submit", typ == "button", typ == "image", typ == "reset", typ == "file":
		return "", "", false
	case typ == "checkbox", typ == "radio":
		if _, checked := attrs["checked"]; !checked {
			return "", "", false
		}
		if v, has := attrs["value"]; has {
			return name, v, true
		}
		return name, "on", true
	}
	return name, attrs["value"], true
}

func voidElement(name string) bool {
	switch name {
	case "input", "br", "img", "meta", "link", "hr":
		return true
	}
	return false
}

func hasClass(class, want string) bool {
	for _, c := range strings.Fields(class) {
		if c == want {
			return true
		}
	}
	return false
}

// skipPast returns the index after the first end at or after i, or the
// end of doc.
func skipPast(doc string, i int, end string) int {
	if j := strings.Index(doc[i:], end); j >= 0 {
		return i + j + len(end)
	}
	return len(doc)
}

// readRaw returns the text up to the end tag of name (any case) and the
// index after that tag.
func readRaw(doc string, i int, name string) (string, int) {
	lower := strings.ToLower(doc[i:])
	j := strings.Index(lower, "</"+name)
	if j < 0 {
		return doc[i:], len(doc)
	}
	return doc[i : i+j], skipPast(doc, i+j, ">")
}

type tag struct {
	name        string
	end         bool
	selfClosing bool
	attrs       map[string]string
}

// readTag reads the tag that starts at doc[i] == '<' and returns it and
// the index after it. Something that is not a tag ("a < b", or a tag the
// page ends inside) has no name.
func readTag(doc string, i int) (tag, int) {
	t := tag{attrs: map[string]string{}}
	j := i + 1
	if j < len(doc) && doc[j] == '/' {
		t.end = true
		j++
	}
	start := j
	for j < len(doc) && isNameByte(doc[j]) {
		j++
	}
	if j == start {
		return tag{}, i + 1
	}
	t.name = strings.ToLower(doc[start:j])
	for j < len(doc) {
		j = skipSpace(doc, j)
		if j >= len(doc) {
			break
		}
		switch doc[j] {
		case '>':
			return t, j + 1
		case '/':
			t.selfClosing = true
			j++
			continue
		}
		var name, value string
		name, value, j = readAttr(doc, j)
		if _, seen := t.attrs[name]; !seen && name != "" {
			t.attrs[name] = html.UnescapeString(value)
		}
	}
	return tag{}, len(doc) // a tag cut off by the end of the page is none
}

// readAttr reads name, name=value, name="value" or name='value' at j.
func readAttr(doc string, j int) (name, value string, next int) {
	start := j
	for j < len(doc) && !isSpace(doc[j]) && doc[j] != '>' && doc[j] != '/' && doc[j] != '=' {
		j++
	}
	if j == start { // a stray '=': skip it
		return "", "", j + 1
	}
	name = strings.ToLower(doc[start:j])
	k := skipSpace(doc, j)
	if k >= len(doc) || doc[k] != '=' {
		return name, "", j
	}
	k = skipSpace(doc, k+1)
	if k >= len(doc) {
		return name, "", k
	}
	if q := doc[k]; q == '"' || q == '\'' {
		end := strings.IndexByte(doc[k+1:], q)
		if end < 0 {
			return name, doc[k+1:], len(doc)
		}
		return name, doc[k+1 : k+1+end], k + 2 + end
	}
	vs := k
	for k < len(doc) && !isSpace(doc[k]) && doc[k] != '>' {
		k++
	}
	return name, doc[vs:k], k
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func skipSpace(doc string, j int) int {
	for j < len(doc) && isSpace(doc[j]) {
		j++
	}
	return j
}

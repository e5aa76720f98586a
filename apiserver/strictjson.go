package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// checkKeys refuses what encoding/json would read differently from another
// JSON reader of the same body: invalid UTF-8 (which it turns into U+FFFD),
// a body that is not an object (null decodes to nothing), a key repeated
// (it keeps the last) and a key in another case than the wire's name (it
// matches names ignoring case). A proxy, a log or a second parser then
// always sees the request the handler sees. v is a pointer to the body's
// flat struct type.
func checkKeys(body []byte, v any) error {
	if !utf8.Valid(body) {
		return errors.New("request body: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("request body: want one JSON object")
	}
	names := wireNames(reflect.TypeOf(v).Elem())
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("request body: %w", err)
		}
		key, _ := tok.(string)
		if !names[key] {
			return fmt.Errorf("request body: unknown field %q", key)
		}
		if seen[key] {
			return fmt.Errorf("request body: field %q given twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("request body: field %q: %w", key, err)
		}
	}
	return nil
}

// wireNames are the JSON names of struct type t's fields.
func wireNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool)
	if t.Kind() != reflect.Struct {
		return names
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "":
			names[f.Name] = true
		default:
			names[name] = true
		}
	}
	return names
}

package policy

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLength is the longest login, host, user, role or group name, in bytes.
const MaxNameLength = 64

// knownNameKind reports whether ValidName accepts kind; the kind only changes
// the error text, so that a caller sees which field was wrong.
func knownNameKind(kind string) bool {
	switch kind {
	case "login", "host", "user", "role", "group":
		return true
	}
	return false
}

// forbiddenNameRunes would change the meaning of a name once it becomes part
// of a certificate principal (LOGIN@HOST, comma-separated lists, wildcards),
// of the bastion's SSH user (LOGIN:HOST), of a file path or of a shell word.
const forbiddenNameRunes = ",*?%@:/\\!"

// ValidName reports whether s may be used as a name of the given kind
// ("login", "host", "user", "role" or "group"). It rejects the empty string,
// names longer than MaxNameLength bytes, invalid UTF-8, any of , * ? % @ : / \ !,
// whitespace, control and other non-printable characters (NUL included), a
// leading '-' (it would read as a command-line option) and the path elements
// "." and "..". The error names the kind and quotes the value.
func ValidName(kind, s string) error {
	if !knownNameKind(kind) {
		return fmt.Errorf("unknown name kind %q", kind)
	}
	switch {
	case s == "":
		return fmt.Errorf("%s name is empty", kind)
	case len(s) > MaxNameLength:
		return fmt.Errorf("%s name %q is longer than %d bytes", kind, s, MaxNameLength)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s name %q is not valid UTF-8", kind, s)
	case s[0] == '-':
		return fmt.Errorf("%s name %q starts with '-'", kind, s)
	case s == "." || s == "..":
		return fmt.Errorf("%s name %q is a path element", kind, s)
	}
	for _, r := range s {
		switch {
		case strings.ContainsRune(forbiddenNameRunes, r):
			return fmt.Errorf("%s name %q contains %q", kind, s, r)
		case unicode.IsSpace(r):
			return fmt.Errorf("%s name %q contains whitespace", kind, s)
		case unicode.IsControl(r) || !unicode.IsPrint(r):
			return fmt.Errorf("%s name %q contains non-printable character %U", kind, s, r)
		}
	}
	return nil
}

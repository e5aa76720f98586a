package recstore

import (
	"fmt"
	"net/url"
	"strings"
)

// Location is where finished recordings live: the spool directory itself
// (Bucket empty, the default) or an S3 bucket and a key prefix under it.
type Location struct {
	Bucket string
	Prefix string // no leading or trailing slash; may be empty
}

// Remote reports whether recordings leave the spool for object storage.
func (l Location) Remote() bool { return l.Bucket != "" }

// String is the location as ParseLocation reads it.
func (l Location) String() string {
	if !l.Remote() {
		return "local"
	}
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	return "s3://" + l.Bucket + "/" + l.Prefix
}

// maxPrefix bounds the key prefix, so that prefix and recording name stay
// within S3's 1024-byte keys.
const maxPrefix = 512

// ParseLocation reads jitd serve --recordings: "" or "local" for the data
// directory's recordings directory, or s3://BUCKET[/PREFIX]. The bucket
// must be a valid S3 bucket name (3 to 63 lower-case letters, digits, dots
// and hyphens, starting and ending with a letter or digit); the prefix is
// slash-separated segments, none empty, "." or "..".
func ParseLocation(s string) (Location, error) {
	if s == "" || s == "local" {
		return Location{}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return Location{}, fmt.Errorf("recordings location %q: %w", s, err)
	}
	if u.Scheme != "s3" {
		return Location{}, fmt.Errorf("recordings location %q: want local or s3://BUCKET/PREFIX", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.Port() != "" {
		return Location{}, fmt.Errorf("recordings location %q: only s3://BUCKET/PREFIX is allowed (credentials come from the environment)", s)
	}
	if err := checkBucket(u.Host); err != nil {
		return Location{}, fmt.Errorf("recordings location %q: %w", s, err)
	}
	prefix := strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/")
	if err := checkPrefix(prefix); err != nil {
		return Location{}, fmt.Errorf("recordings location %q: %w", s, err)
	}
	return Location{Bucket: u.Host, Prefix: prefix}, nil
}

func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters", b)
	}
	for i, c := range b {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '-' {
			return fmt.Errorf("bucket name %q: %q is not a lower-case letter, digit, dot or hyphen", b, c)
		}
		if !alnum && (i == 0 || i == len(b)-1) {
			return fmt.Errorf("bucket name %q must start and end with a letter or digit", b)
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("bucket name %q has two dots in a row", b)
	}
	return nil
}

func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > maxPrefix {
		return fmt.Errorf("key prefix is %d bytes, at most %d are allowed", len(p), maxPrefix)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("key prefix %q has an empty, \".\" or \"..\" segment", p)
		}
		for _, c := range seg {
			if c < 0x20 || c == 0x7f || c == '\\' {
				return fmt.Errorf("key prefix %q has a control character or backslash", p)
			}
		}
	}
	return nil
}

// key is the object key of the recording name (slash-separated, relative
// to the spool directory).
func (l Location) key(name string) string {
	if l.Prefix == "" {
		return name
	}
	return l.Prefix + "/" + name
}

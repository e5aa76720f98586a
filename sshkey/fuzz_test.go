package sshkey

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzParseAuthorized: the parser never panics, and every key it accepts is
// exactly the submitted blob, of the named type, within the size rules, and
// parses again from its canonical line. Seeds: testdata/fuzz/FuzzParseAuthorized.
func FuzzParseAuthorized(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseAuthorized(text)
		if err != nil {
			if k != nil {
				t.Fatalf("key returned with error %v", err)
			}
			if !strings.HasPrefix(err.Error(), "public key") && !strings.HasPrefix(err.Error(), "this is a private key") {
				t.Fatalf("error %q does not say it is about the public key", err)
			}
			return
		}
		fields := strings.Fields(text)
		blob, err := base64.StdEncoding.DecodeString(fields[1])
		if err != nil {
			t.Fatalf("accepted undecodable base64: %v", err)
		}
		if !bytes.Equal(k.Marshal(), blob) {
			t.Fatalf("accepted key re-marshals to another blob:\n%x\n%x", k.Marshal(), blob)
		}
		if k.Type() != fields[0] {
			t.Fatalf("accepted key of type %q named %q", k.Type(), fields[0])
		}
		if err := Check(k); err != nil {
			t.Fatalf("accepted key breaks the key rules: %v", err)
		}
		again, err := ParseAuthorized(string(ssh.MarshalAuthorizedKey(k)))
		if err != nil || !bytes.Equal(again.Marshal(), blob) {
			t.Fatalf("canonical line does not parse back: %v", err)
		}
	})
}

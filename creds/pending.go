package creds

import (
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/atomicfile"
)

// A request waiting for approval keeps its fresh private key on disk until
// it is redeemed, so that jit wait can finish what jit request --no-wait
// started, in another process.

// externalPrefix marks a pending request made for a key jit did not make
// (--key FILE.pub): the file names the public key instead of holding a key.
const externalPrefix = "external "

func (d Dir) pendingDir() string { return d.State + "/pending" }

func (d Dir) pendingPath(id string) string { return d.pendingDir() + "/" + id }

// SavePending stores the key of request id until it is redeemed, readable
// only by the owner: the fresh private key priv, or with priv nil the path
// pubFile of the external public key the request certifies.
func (d Dir) SavePending(id string, priv ed25519.PrivateKey, pubFile string) error {
	if err := os.MkdirAll(d.pendingDir(), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", d.pendingDir(), err)
	}
	if priv == nil {
		return atomicfile.Write(d.pendingPath(id), []byte(externalPrefix+pubFile+"\n"), 0o600)
	}
	block, err := ssh.MarshalPrivateKey(priv, "jit pending "+id)
	if err != nil {
		return fmt.Errorf("encode pending key of %s: %w", id, err)
	}
	return atomicfile.Write(d.pendingPath(id), pem.EncodeToMemory(block), 0o600)
}

// LoadPending returns what SavePending stored for request id: the fresh
// private key, or (priv nil) the external public key file.
func (d Dir) LoadPending(id string) (priv ed25519.PrivateKey, pubFile string, err error) {
	b, err := os.ReadFile(d.pendingPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("no key for request %s on this machine (it was made elsewhere)", id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read pending key of %s: %w", id, err)
	}
	if pubFile, ok := strings.CutPrefix(string(b), externalPrefix); ok {
		return nil, strings.TrimSuffix(pubFile, "\n"), nil
	}
	k, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, "", fmt.Errorf("parse pending key of %s: %w", id, err)
	}
	p, ok := k.(*ed25519.PrivateKey)
	if !ok {
		return nil, "", fmt.Errorf("pending key of %s is not ed25519", id)
	}
	return *p, "", nil
}

// RemovePending forgets the key of a redeemed request. A key already gone
// is not an error: the grant it served is stored either way.
func (d Dir) RemovePending(id string) error {
	if err := os.Remove(d.pendingPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pending key of %s: %w", id, err)
	}
	return nil
}

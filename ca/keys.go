// Package ca holds jitssh's certificate authority: the three CA key pairs on
// disk, the bastion's host key, the API's TLS certificate, the strict parser
// for public keys submitted by clients, and OpenSSH certificate signing.
//
// Private key files are OpenSSH PEM, mode 0600; loading refuses files that
// group or others may read or write. Nothing here ever overwrites a key file.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/atomicfile"
)

// Algorithm names a key type and size for newly generated keys.
type Algorithm string

// The supported algorithms for generated keys.
const (
	Ed25519   Algorithm = "ed25519" // the default
	ECDSAP256 Algorithm = "ecdsa-p256"
	ECDSAP384 Algorithm = "ecdsa-p384"
	RSA3072   Algorithm = "rsa-3072"
	RSA4096   Algorithm = "rsa-4096"
)

// Algorithms lists every supported Algorithm, the default first.
func Algorithms() []Algorithm {
	return []Algorithm{Ed25519, ECDSAP256, ECDSAP384, RSA3072, RSA4096}
}

// ParseAlgorithm returns the Algorithm named s; "" means Ed25519.
func ParseAlgorithm(s string) (Algorithm, error) {
	if s == "" {
		return Ed25519, nil
	}
	for _, a := range Algorithms() {
		if string(a) == s {
			return a, nil
		}
	}
	names := make([]string, 0, 5)
	for _, a := range Algorithms() {
		names = append(names, string(a))
	}
	return "", fmt.Errorf("unknown key algorithm %q (want one of %s)", s, strings.Join(names, ", "))
}

// generate makes a new private key of algorithm a.
func (a Algorithm) generate() (crypto.Signer, error) {
	switch a {
	case Ed25519, "":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	_, err := ParseAlgorithm(string(a))
	return nil, err
}

// Keys are the three CA signers.
type Keys struct {
	// User signs engineers' certificates; the bastion trusts it.
	User ssh.Signer
	// Host signs host keys (the bastion's and the targets').
	Host ssh.Signer
	// Target signs the per-session certificates the bastion presents to
	// targets; targets trust only it.
	Target ssh.Signer
}

// PublicKeys are the public halves of the three CA keys: what the API
// publishes (/v1/ca) and what a KRL names, without the power to sign.
type PublicKeys struct {
	User, Host, Target ssh.PublicKey
}

// Public returns the public halves of k, for parts of the daemon that must
// name the CAs but never sign (the API handlers).
func (k *Keys) Public() PublicKeys {
	return PublicKeys{User: k.User.PublicKey(), Host: k.Host.PublicKey(), Target: k.Target.PublicKey()}
}

// caFile describes one of the three CA key files.
type caFile struct {
	name, comment string
	slot          func(*Keys) *ssh.Signer
}

func caFiles() []caFile {
	return []caFile{
		{name: "user_ca", comment: "jitssh user CA", slot: func(k *Keys) *ssh.Signer { return &k.User }},
		{name: "host_ca", comment: "jitssh host CA", slot: func(k *Keys) *ssh.Signer { return &k.Host }},
		{name: "target_ca", comment: "jitssh target CA", slot: func(k *Keys) *ssh.Signer { return &k.Target }},
	}
}

// InitKeys creates any missing CA key pair in dir (created 0700):
// dir/user_ca, dir/host_ca and dir/target_ca as OpenSSH private keys (0600)
// with an authorized_keys line in the matching .pub file (0644, comment
// "jitssh user CA" and so on). Existing keys are loaded, never overwritten,
// whatever alg says; a missing .pub beside an existing key is written again.
// created lists the paths of the files it wrote.
func InitKeys(dir string, alg Algorithm) (keys *Keys, created []string, err error) {
	if _, err := ParseAlgorithm(string(alg)); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create CA directory: %w", err)
	}
	keys = &Keys{}
	for _, f := range caFiles() {
		s, made, err := loadOrCreate(filepath.Join(dir, f.name), alg, f.comment)
		created = append(created, made...)
		if err != nil {
			return nil, created, err
		}
		*f.slot(keys) = s
	}
	return keys, created, nil
}

// LoadKeys loads the three CA key pairs from dir. It refuses a missing
// private or .pub file, a .pub that does not match its private key, and a
// private file with any group or other permission bits.
func LoadKeys(dir string) (*Keys, error) {
	keys := &Keys{}
	for _, f := range caFiles() {
		path := filepath.Join(dir, f.name)
		s, err := loadSigner(path)
		if err != nil {
			return nil, err
		}
		if err := checkPublicFile(path, s, true); err != nil {
			return nil, err
		}
		*f.slot(keys) = s
	}
	return keys, nil
}

// LoadSigner loads the private key at path, such as the daemon's checkpoint
// key, and never creates one: a missing file is an error wrapping
// fs.ErrNotExist. The permission rules of LoadKeys apply, and a path.pub
// beside the key, when there is one, must hold its public key. An RSA key
// signs with SHA-2 only.
func LoadSigner(path string) (ssh.Signer, error) {
	s, err := loadSigner(path)
	if err != nil {
		return nil, err
	}
	if err := checkPublicFile(path, s, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return s, nil
}

// LoadOrCreateHostKey loads the service host key at path (the bastion's), or
// creates it with algorithm alg (and path.pub) if it does not exist. The
// permission rules of LoadKeys apply. An RSA host key signs with SHA-2 only.
func LoadOrCreateHostKey(path string, alg Algorithm) (ssh.Signer, error) {
	if _, err := ParseAlgorithm(string(alg)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create host key directory: %w", err)
	}
	s, _, err := loadOrCreate(path, alg, "jitssh host key")
	return s, err
}

// loadOrCreate loads the key at path or generates it, and writes path.pub if
// missing. It returns the files it wrote.
func loadOrCreate(path string, alg Algorithm, comment string) (ssh.Signer, []string, error) {
	var created []string
	s, err := loadSigner(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, perr := os.Lstat(path + ".pub"); perr == nil {
			// Writers link the private key before they write the .pub, so
			// a concurrent caller may have written both since we looked:
			// look again. A public key still without its private key is
			// refused rather than contradicted by a new private key.
			if s, err = loadSigner(path); errors.Is(err, fs.ErrNotExist) {
				return nil, nil, fmt.Errorf("%s: private key missing but %s.pub exists; restore it or remove the .pub", path, path)
			}
			return finishLoad(path, comment, s, err, nil)
		}
		key, gerr := alg.generate()
		if gerr != nil {
			return nil, nil, fmt.Errorf("generate %s key for %s: %w", alg, path, gerr)
		}
		block, merr := ssh.MarshalPrivateKey(key, comment)
		if merr != nil {
			return nil, nil, fmt.Errorf("marshal %s: %w", path, merr)
		}
		werr := writeNew(path, pem.EncodeToMemory(block), 0o600)
		switch {
		case werr == nil:
			created = append(created, path)
		case !errors.Is(werr, fs.ErrExist):
			return nil, nil, werr
		}
		// On fs.ErrExist a concurrent caller won the race: use its key.
		s, err = loadSigner(path)
	}
	return finishLoad(path, comment, s, err, created)
}

// finishLoad checks (or writes, when missing) the .pub beside a loaded key.
func finishLoad(path, comment string, s ssh.Signer, err error, created []string) (ssh.Signer, []string, error) {
	if err != nil {
		return nil, created, err
	}
	if err := checkPublicFile(path, s, false); errors.Is(err, fs.ErrNotExist) {
		werr := writeNew(path+".pub", []byte(PublicKeyLine(s.PublicKey(), comment)+"\n"), 0o644)
		switch {
		case werr == nil:
			created = append(created, path+".pub")
		case errors.Is(werr, fs.ErrExist):
			if err := checkPublicFile(path, s, true); err != nil {
				return nil, created, err
			}
		default:
			return nil, created, werr
		}
	} else if err != nil {
		return nil, created, err
	}
	return s, created, nil
}

// loadSigner reads an unencrypted OpenSSH or PEM private key, refusing files
// with group or other permission bits. An RSA key signs with SHA-2 only.
func loadSigner(path string) (ssh.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: permissions %#o are too open; want 0600", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("%s: key is encrypted; jitssh needs an unencrypted key", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: parse private key: %w", path, err)
	}
	if err := checkKey(s.PublicKey()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sha2Signer(s)
}

// sha2Signer restricts an RSA signer to rsa-sha2-512 and rsa-sha2-256, so
// that certificates and host signatures never use SHA-1 (which OpenSSH
// refuses by default). Other signers are returned as they are.
func sha2Signer(s ssh.Signer) (ssh.Signer, error) {
	if s.PublicKey().Type() != ssh.KeyAlgoRSA {
		return s, nil
	}
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		return nil, errors.New("rsa signer cannot choose its signature algorithm")
	}
	return ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256})
}

// checkPublicFile checks that path.pub holds s's public key. With the file
// missing it returns an error wrapping fs.ErrNotExist.
func checkPublicFile(path string, s ssh.Signer, required bool) error {
	data, err := os.ReadFile(path + ".pub")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !required {
			return err
		}
		return fmt.Errorf("load public key: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return fmt.Errorf("%s.pub: %w", path, err)
	}
	if string(pub.Marshal()) != string(s.PublicKey().Marshal()) {
		return fmt.Errorf("%s.pub: %s does not match the private key %s", path, Fingerprint(pub), Fingerprint(s.PublicKey()))
	}
	return nil
}

// writeNew writes data to path with mode perm, failing with fs.ErrExist if
// path exists: a crash never leaves a partial key and a concurrent writer
// never loses its key (atomicfile.Create links a synced temporary file into
// place).
func writeNew(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Create(path, data, perm)
}

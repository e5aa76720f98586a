package sshkey

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

// wireString is the SSH wire encoding of a string.
func wireString(b []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	return append(out, b...)
}

// wireMPInt is the SSH wire encoding of a non-negative mpint.
func wireMPInt(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return wireString(b)
}

func wireBlob(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// keyLine is "TYPE BASE64 comment" for a crafted blob.
func keyLine(keyType string, blob []byte) string {
	return keyType + " " + base64.StdEncoding.EncodeToString(blob) + " test@example"
}

// line is the authorized_keys line of k with a comment.
func line(k ssh.PublicKey) string {
	return keyLine(k.Type(), k.Marshal())
}

// rsaBlob crafts an ssh-rsa public key blob with a modulus of exactly bits
// bits; generating real keys of 9000 bits would take minutes.
func rsaBlob(t testing.TB, bits int) []byte {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
	if err != nil {
		t.Fatal(err)
	}
	n.SetBit(n, bits-1, 1)
	n.SetBit(n, 0, 1)
	return wireBlob(wireString([]byte("ssh-rsa")), wireMPInt(big.NewInt(65537)), wireMPInt(n))
}

func dsaBlob() []byte {
	one := big.NewInt(0x7fffffff)
	return wireBlob(wireString([]byte("ssh-dss")), wireMPInt(one), wireMPInt(one), wireMPInt(one), wireMPInt(one))
}

func skEd25519Blob(t testing.TB) []byte {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return wireBlob(wireString([]byte(ssh.KeyAlgoSKED25519)), wireString(pub), wireString([]byte("ssh:")))
}

func skECDSABlob(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := k.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	return wireBlob(wireString([]byte(ssh.KeyAlgoSKECDSA256)), wireString([]byte("nistp256")), wireString(pk.Bytes()), wireString([]byte("ssh:")))
}

// userCert is key certified by a fresh CA.
func userCert(t testing.TB, key ssh.PublicKey) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{
		Key: key, Serial: 1, CertType: ssh.UserCert, KeyId: "x",
		ValidPrincipals: []string{"root@db1"},
		ValidAfter:      uint64(time.Unix(1000, 0).Unix()), ValidBefore: uint64(time.Unix(2000, 0).Unix()),
	}
	if err := c.SignCert(rand.Reader, testkit.Signer(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

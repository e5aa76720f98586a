package bastion

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

// kexInit is the part of an SSH_MSG_KEXINIT the tests check.
type kexInit struct {
	Kex, HostKeys, Ciphers, MACs []string
}

// readKexInit reads a peer's version line and its first, unencrypted,
// binary packet (RFC 4253 sections 4.2, 6 and 7.1) from r.
func readKexInit(r *bufio.Reader) (kexInit, error) {
	if _, err := r.ReadString('\n'); err != nil {
		return kexInit{}, fmt.Errorf("read version line: %w", err)
	}
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return kexInit{}, fmt.Errorf("read packet header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1+17 || n > 35000 {
		return kexInit{}, fmt.Errorf("packet length %d", n)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r, body); err != nil {
		return kexInit{}, fmt.Errorf("read packet: %w", err)
	}
	payload := body[:len(body)-int(hdr[4])]
	if payload[0] != 20 {
		return kexInit{}, fmt.Errorf("first packet type %d, want KEXINIT (20)", payload[0])
	}
	rest := payload[17:]
	var lists [10][]string
	for i := range lists {
		if len(rest) < 4 || uint32(len(rest)-4) < binary.BigEndian.Uint32(rest) {
			return kexInit{}, fmt.Errorf("name-list %d truncated", i)
		}
		l := binary.BigEndian.Uint32(rest)
		lists[i] = strings.Split(string(rest[4:4+l]), ",")
		rest = rest[4+l:]
	}
	return kexInit{Kex: lists[0], HostKeys: lists[1], Ciphers: lists[2], MACs: lists[4]}, nil
}

// TestTargetLegOffer logs in through the bastion to a target whose address
// is a listener that reads what the bastion offers there: only the
// hardened key exchanges (with the strict-kex marker), host key algorithms
// and MACs, never x/crypto's defaults.
func TestTargetLegOffer(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	got := make(chan kexInit, 1)
	failed := make(chan error, 1)
	go func() {
		c, err := probe.Accept()
		if err != nil {
			failed <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, "SSH-2.0-probe\r\n"); err != nil {
			failed <- err
			return
		}
		k, err := readKexInit(bufio.NewReader(c))
		if err != nil {
			failed <- err
			return
		}
		got <- k
	}()
	e := newEnv(t, envOptions{extraTargets: map[string]Target{"probe": {Name: "probe", Address: probe.Addr().String()}}})
	key, _, _ := e.userCert(t, certSpec{name: "probe", principal: e.login + "@probe", validFor: 5 * time.Minute, register: true})
	_, _, _ = run(t, e.ssh(key, e.login+"@probe", "true"), "")
	var k kexInit
	select {
	case k = <-got:
	case err := <-failed:
		t.Fatalf("probe target: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the bastion never reached the probe target")
	}
	want := kexInit{
		Kex:      append(keyExchanges(), "curve25519-sha256@libssh.org", "ext-info-c", "kex-strict-c-v00@openssh.com"),
		HostKeys: targetHostCertAlgorithms(),
		Ciphers:  targetLegCiphers(),
		MACs:     macs(),
	}
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"key exchanges", k.Kex, want.Kex}, {"host key algorithms", k.HostKeys, want.HostKeys},
		{"ciphers", k.Ciphers, want.Ciphers}, {"MACs", k.MACs, want.MACs},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("bastion offers targets %s %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestHostKeyAlgorithms(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := ssh.NewSignerFromKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaAny, err := ssh.NewSignerFromKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaSHA2, err := ssh.NewSignerWithAlgorithms(rsaAny.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		signer     ssh.Signer
		wantSigner string // checkHostSigner error substring; "" accepts
		wantPinned []string
	}{
		{name: "ed25519", signer: testkit.Signer(t), wantPinned: []string{ssh.KeyAlgoED25519}},
		{name: "rsa sha2 only", signer: rsaSHA2, wantPinned: []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}},
		{name: "rsa with sha1", signer: rsaAny, wantSigner: "SHA-1", wantPinned: []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}},
		{name: "ecdsa", signer: ecSigner, wantSigner: "not accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHostSigner(tc.signer)
			if tc.wantSigner == "" && err != nil || tc.wantSigner != "" && (err == nil || !strings.Contains(err.Error(), tc.wantSigner)) {
				t.Errorf("checkHostSigner: %v, want %q", err, tc.wantSigner)
			}
			algos, err := hostKeyAlgos(tc.signer.PublicKey().Type())
			if !slices.Equal(algos, tc.wantPinned) || (err == nil) != (tc.wantPinned != nil) {
				t.Errorf("hostKeyAlgos(%s) = %q, %v; want %q", tc.signer.PublicKey().Type(), algos, err, tc.wantPinned)
			}
		})
	}
}

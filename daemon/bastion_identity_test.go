package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/internal/testkit"
)

func TestBastionPrincipals(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name, listen string
		public       []string
		want         []string
	}{
		{name: "loopback", listen: "127.0.0.1:2222", want: []string{BastionHostKeyAlias, "localhost", "127.0.0.1", host}},
		{name: "public names", listen: "0.0.0.0:2222", public: []string{"bastion.example.com:2222", "[2001:db8::7]:22", "10.0.0.5:2222"},
			want: []string{BastionHostKeyAlias, "bastion.example.com", "2001:db8::7", "10.0.0.5"}},
		{name: "public and loopback", listen: "127.0.0.2:2222", public: []string{"jitssh-bastion.test:2222"},
			want: []string{BastionHostKeyAlias, "jitssh-bastion.test", "localhost", "127.0.0.1", "127.0.0.2"}},
		{name: "specific listen address", listen: "10.1.2.3:2222", public: []string{"b.example:2222"},
			want: []string{BastionHostKeyAlias, "b.example", "10.1.2.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bastionPrincipals(tc.listen, tc.public); !slices.Equal(got, tc.want) {
				t.Errorf("bastionPrincipals(%q, %q) = %q, want %q", tc.listen, tc.public, got, tc.want)
			}
		})
	}
}

// A bastion on every address without --public-addr is refused with what to
// add; so are public addresses that are not NAME:PORT.
func TestBastionAddrsRefused(t *testing.T) {
	for _, tc := range []struct {
		listen string
		public []string
		want   string
	}{
		{listen: "0.0.0.0:2222", want: errPublicAddrNeeded},
		{listen: "[::]:2222", want: errPublicAddrNeeded},
		{listen: ":2222", want: errPublicAddrNeeded},
		{listen: "0.0.0.0:2222", public: []string{"bastion.example.com"}, want: "want NAME:PORT"},
		{listen: "0.0.0.0:2222", public: []string{"bastion.example.com:ssh"}, want: "is not a number"},
		{listen: "0.0.0.0:2222", public: []string{"0.0.0.0:2222"}, want: "not \"0.0.0.0\""},
		{listen: "0.0.0.0:2222", public: []string{":2222"}, want: "not \"\""},
	} {
		t.Run(tc.listen+" "+strings.Join(tc.public, ","), func(t *testing.T) {
			err := checkBastionAddrs(tc.listen, tc.public)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkBastionAddrs = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// Through New: nothing is listening after the refusal.
	_, err := New(context.Background(), Config{Dir: initDir(t), APIAddr: "127.0.0.1:0", BastionAddr: "0.0.0.0:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), errPublicAddrNeeded) {
		t.Fatalf("New with the bastion on 0.0.0.0 and no public address = %v, want %q", err, errPublicAddrNeeded)
	}
	if err := checkBastionAddrs("0.0.0.0:2222", []string{"bastion.example.com:2222"}); err != nil {
		t.Errorf("0.0.0.0 with a public address: %v", err)
	}
}

// bastionHostCert does a key exchange with the bastion at addr and returns
// the host certificate it presented (authentication is not attempted).
func bastionHostCert(t *testing.T, addr string) *ssh.Certificate {
	t.Helper()
	var got *ssh.Certificate
	cfg := &ssh.ClientConfig{User: "probe", Timeout: 5 * time.Second,
		HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got, _ = key.(*ssh.Certificate)
			return nil
		}}
	c, err := ssh.Dial("tcp", addr, cfg)
	if err == nil {
		c.Close()
	}
	if got == nil {
		t.Fatalf("no host certificate from the bastion at %s: %v", addr, err)
	}
	return got
}

// The bastion renews its host certificate through the door once two thirds
// of its lifetime have passed, and new connections get the new one without
// a restart; /v1/ca advertises the first public address.
func TestBastionCertificateRenewed(t *testing.T) {
	dir := initDir(t)
	ready := make(chan Addrs, 1)
	d, err := New(context.Background(), Config{Dir: dir, APIAddr: "127.0.0.1:0", BastionAddr: "127.0.0.1:0",
		PublicAddrs: []string{"bastion.example.com:2222", "127.0.0.2:2222"}, BastionCertLifetime: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(a Addrs) { ready <- a }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	a := <-ready
	first := bastionHostCert(t, a.Bastion)
	if want := []string{BastionHostKeyAlias, "bastion.example.com", "127.0.0.2", "localhost", "127.0.0.1"}; !slices.Equal(first.ValidPrincipals, want) {
		t.Errorf("principals %q, want %q", first.ValidPrincipals, want)
	}
	c, err := api.NewClient("https://"+a.API, a.TLSFingerprint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if info, err := c.CA(ctx); err != nil || info.Bastion != "bastion.example.com:2222" {
		t.Errorf("/v1/ca bastion %q (%v), want the first public address", info.Bastion, err)
	}
	var renewed *ssh.Certificate
	testkit.WaitFor(t, 10*time.Second, "a renewed bastion host certificate", func() bool {
		renewed = bastionHostCert(t, a.Bastion)
		return renewed.Serial != first.Serial
	})
	if string(renewed.Key.Marshal()) != string(first.Key.Marshal()) || renewed.ValidBefore <= first.ValidBefore {
		t.Errorf("renewed certificate for key %s valid before %d; first %s, %d", ssh.FingerprintSHA256(renewed.Key), renewed.ValidBefore,
			ssh.FingerprintSHA256(first.Key), first.ValidBefore)
	}
	store, err := audit.Open(Layout{Dir: dir}.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	evs, err := store.Events(ctx, audit.EventFilter{Type: "host_cert.issued"})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[uint64]string{}
	for _, ev := range evs {
		codes[ev.Serial] = ev.Code
	}
	if codes[first.Serial] != eventBastion || codes[renewed.Serial] != eventBastionRenewal {
		t.Errorf("host_cert.issued codes %v; want %q for %d and %q for %d", codes, eventBastion, first.Serial, eventBastionRenewal, renewed.Serial)
	}
}

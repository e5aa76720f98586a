package provision

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/issuance"
)

// Target is where a host's helper is reached, as the bastion reaches it.
type Target struct {
	Name, Address string
	// HostKey pins the target's host key; nil means the target must
	// present a host certificate from the host CA naming Name or the
	// host of Address.
	HostKey ssh.PublicKey
}

// SSHConfig is what SSHRunner needs. All but EgressAddresses, Clock and
// Timeout are required.
type SSHConfig struct {
	// Issuer mints the provisioning certificates (recorded like every
	// certificate) with the target CA.
	Issuer *issuance.Issuer
	// HostCA verifies targets' host certificates.
	HostCA ssh.PublicKey
	// Resolve names a host's address and pin, as the bastion's Resolve.
	Resolve func(host string) (Target, bool)
	// Revoked reports whether a host certificate serial was revoked (its
	// host removed); an error refuses the host.
	Revoked func(ctx context.Context, serial uint64) (bool, error)
	// EgressAddresses, as CIDRs, go into source-address; empty means
	// the local address of each connection, exactly as the target sees
	// it (set them behind NAT).
	EgressAddresses []string
	Clock           func() time.Time
	// Timeout bounds one operation, dial to answer; zero means 50s
	// (a removal kills processes in a bounded loop first).
	Timeout time.Duration
}

// SSHRunner runs the helper over SSH: user root, a fresh key with a
// one-minute provisioning certificate (issuance.ProvisionSpec), the
// target's host key checked against its pin or the host CA, the request
// on stdin and one JSON answer on stdout.
type SSHRunner struct {
	cfg SSHConfig
}

// maxAnswer bounds the helper's answer (a list of many accounts fits).
const maxAnswer = 1 << 20

// NewSSHRunner checks cfg and returns the runner.
func NewSSHRunner(cfg SSHConfig) (*SSHRunner, error) {
	if cfg.Issuer == nil || cfg.Resolve == nil || cfg.Revoked == nil {
		return nil, errors.New("provision: ssh config: Issuer, Resolve and Revoked are required")
	}
	for _, a := range cfg.EgressAddresses {
		if _, _, err := net.ParseCIDR(a); err != nil {
			return nil, fmt.Errorf("provision: ssh config: egress address %q: %w", a, err)
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 50 * time.Second
	}
	return &SSHRunner{cfg: cfg}, nil
}

// Run implements Runner.
func (r *SSHRunner) Run(ctx context.Context, host, requestID, op string, req api.AccountRequest) (api.AccountAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	tgt, ok := r.cfg.Resolve(host)
	if !ok {
		return api.AccountAnswer{}, fmt.Errorf("unknown host %q", host)
	}
	if tgt.HostKey == nil && r.cfg.HostCA == nil {
		return api.AccountAnswer{}, fmt.Errorf("host %q: no pinned host key and no host CA", host)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return api.AccountAnswer{}, fmt.Errorf("encode %s request: %w", op, err)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", tgt.Address)
	if err != nil {
		return api.AccountAnswer{}, fmt.Errorf("dial %s at %s: %w", host, tgt.Address, err)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	client, err := r.handshake(ctx, nc, tgt, requestID, op)
	if err != nil {
		return api.AccountAnswer{}, err
	}
	defer client.Close()
	return runHelper(client, host, op, body)
}

// handshake mints the provisioning certificate for this connection's
// egress address and authenticates as root.
func (r *SSHRunner) handshake(ctx context.Context, nc net.Conn, tgt Target, requestID, op string) (*ssh.Client, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate provisioning key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	egress := r.cfg.EgressAddresses
	if len(egress) == 0 {
		// The address this connection comes from is exactly what the
		// target's sshd checks source-address against.
		egress = []string{hostCIDR(nc.LocalAddr())}
	}
	now := r.cfg.Clock().UTC().Truncate(time.Second)
	spec := issuance.ProvisionSpec(sshPub, tgt.Name, requestID, op, egress, now)
	cert, err := r.cfg.Issuer.Target(ctx, spec, issuance.Record{
		Certificate: audit.Certificate{RequestID: requestID, Host: tgt.Name, Login: "root", IssuedAt: now},
		Event: audit.Event{Time: now, Code: "provision", Actor: "jitd", Host: tgt.Name, Login: "root", RequestID: requestID,
			Message: "ephemeral account " + op, Data: map[string]string{"op": op}},
	})
	if err != nil {
		return nil, fmt.Errorf("mint provisioning certificate for %s: %w", tgt.Name, err)
	}
	certSigner, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, err
	}
	cb, algos := r.hostKeyCheck(ctx, tgt)
	ccfg := &ssh.ClientConfig{
		User:              "root",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-jitssh-provision",
	}
	c, chans, reqs, err := ssh.NewClientConn(nc, tgt.Address, ccfg)
	if err != nil {
		return nil, fmt.Errorf("ssh handshake with %s at %s: %w", tgt.Name, tgt.Address, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// runHelper runs op (the force-command sees it as SSH_ORIGINAL_COMMAND)
// with body on stdin and decodes the one answer.
func runHelper(client *ssh.Client, host, op string, body []byte) (api.AccountAnswer, error) {
	sess, err := client.NewSession()
	if err != nil {
		return api.AccountAnswer{}, fmt.Errorf("open session on %s: %w", host, err)
	}
	defer sess.Close()
	var out, stderr limitedBuffer
	sess.Stdin, sess.Stdout, sess.Stderr = bytes.NewReader(body), &out, &stderr
	runErr := sess.Run(op)
	var exit *ssh.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return api.AccountAnswer{}, fmt.Errorf("run %s on %s: %w", op, host, runErr)
	}
	ans, err := DecodeAnswer(out.Bytes())
	if err != nil {
		return api.AccountAnswer{}, fmt.Errorf("%s on %s (exit %v, stderr %q): %w", op, host, runErr, boundText(stderr.String()), err)
	}
	if (runErr == nil) != ans.OK {
		return api.AccountAnswer{}, fmt.Errorf("%s on %s: exit %v does not match ok=%v", op, host, runErr, ans.OK)
	}
	return ans, nil
}

// DecodeAnswer reads the helper's one JSON answer strictly: no unknown
// fields, nothing after it, a code on every failure.
func DecodeAnswer(b []byte) (api.AccountAnswer, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ans api.AccountAnswer
	if err := dec.Decode(&ans); err != nil {
		return api.AccountAnswer{}, fmt.Errorf("answer is not one JSON object of the helper's shape: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return api.AccountAnswer{}, errors.New("answer has data after its JSON object")
	}
	if !ans.OK && ans.Code == "" {
		return api.AccountAnswer{}, errors.New("failed answer without a code")
	}
	return ans, nil
}

// hostKeyCheck is the bastion's rule for targets: the pin, or a host
// certificate from the host CA naming the host, not revoked. Never trust
// on first use.
func (r *SSHRunner) hostKeyCheck(ctx context.Context, tgt Target) (ssh.HostKeyCallback, []string) {
	if tgt.HostKey != nil {
		pin := tgt.HostKey.Marshal()
		return func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if c, ok := key.(*ssh.Certificate); ok {
				key = c.Key
			}
			if !bytes.Equal(key.Marshal(), pin) {
				return fmt.Errorf("host %q key %s does not match pinned %s", tgt.Name, ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(tgt.HostKey))
			}
			return nil
		}, nil
	}
	ca := r.cfg.HostCA.Marshal()
	checker := &ssh.CertChecker{
		IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return bytes.Equal(auth.Marshal(), ca) },
		Clock:           r.cfg.Clock,
	}
	addrHost, _, _ := net.SplitHostPort(tgt.Address)
	cb := func(_ string, remote net.Addr, key ssh.PublicKey) error {
		if err := checker.CheckHostKey(net.JoinHostPort(tgt.Name, "22"), remote, key); err != nil {
			if err2 := checker.CheckHostKey(net.JoinHostPort(addrHost, "22"), remote, key); err2 != nil {
				return fmt.Errorf("host %q key %s: %w", tgt.Name, ssh.FingerprintSHA256(key), err)
			}
		}
		cert := key.(*ssh.Certificate)
		revoked, err := r.cfg.Revoked(ctx, cert.Serial)
		if err != nil {
			return fmt.Errorf("host %q certificate serial %d: revocation unknown: %w", tgt.Name, cert.Serial, err)
		}
		if revoked {
			return fmt.Errorf("host %q certificate serial %d is revoked", tgt.Name, cert.Serial)
		}
		return nil
	}
	return cb, []string{ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
		ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01}
}

// hostCIDR is addr's IP as a one-address CIDR.
func hostCIDR(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return ip4.String() + "/32"
	}
	return ta.IP.String() + "/128"
}

// limitedBuffer keeps the first maxAnswer bytes and drops the rest, so a
// misbehaving target cannot fill jitd's memory.
type limitedBuffer struct {
	bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxAnswer - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

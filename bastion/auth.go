package bastion

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

// permit-* certificate extensions the bastion honours.
const (
	permitPTY     = "permit-pty"
	permitPort    = "permit-port-forwarding"
	permitAgent   = "permit-agent-forwarding"
	permitX11     = "permit-X11-forwarding"
	optForceCmd   = "force-command"
	optSourceAddr = "source-address"
)

// identity is what an authenticated certificate allows. It travels from
// VerifiedPublicKeyCallback to the channel handlers as a typed value in the
// connection's Permissions.ExtraData (see permissions), never re-parsed from
// strings.
type identity struct {
	User, Login, Host, RequestID string
	Serial                       uint64
	ValidBefore                  time.Time
	RecordInput                  bool
	IdleTimeout                  time.Duration
	ForceCommand                 string
	// Extensions are the certificate's; read-only once authorize built them.
	Extensions map[string]string
	// Cert is the certificate that authenticated; read-only.
	Cert *ssh.Certificate
}

// principal is the exact principal the certificate must carry.
func (id identity) principal() string { return id.Login + "@" + id.Host }

func (id identity) permits(ext string) bool {
	_, ok := id.Extensions[ext]
	return ok
}

// identityKey is the Permissions.ExtraData key under which the identity of
// the proved key is stored; an unexported type, so nothing else can set it.
type identityKey struct{}

// permissions are the Permissions of the connection whose key id describes:
// the identity itself in ExtraData, and the certificate's critical options so
// that x/crypto enforces source-address on the key that authenticated.
func (id identity) permissions(crit map[string]string) *ssh.Permissions {
	return &ssh.Permissions{
		CriticalOptions: maps.Clone(crit),
		ExtraData:       map[any]any{identityKey{}: id},
	}
}

// identityOf returns the identity VerifiedPublicKeyCallback attached to an
// authenticated connection's Permissions. Only that callback, which x/crypto
// calls for the key whose signature it verified, sets it, so an identity
// here is one of a proved key.
func identityOf(p *ssh.Permissions) (identity, error) {
	if p == nil {
		return identity{}, errors.New("connection has no authenticated certificate")
	}
	id, ok := p.ExtraData[identityKey{}].(identity)
	if !ok {
		return identity{}, errors.New("connection has no authenticated certificate")
	}
	return id, nil
}

// ParseTargetUser splits the SSH user "LOGIN@HOST" or "LOGIN:HOST" into login
// and host. The separator is the first '@' or ':'; both parts must be
// non-empty valid UTF-8 and contain no further separator, comma, wildcard,
// whitespace, control or other non-printable character (C1 controls, bidi
// overrides): the name arrives before authentication and ends up in audit
// records. Every login and host policy.ValidName accepts passes.
func ParseTargetUser(user string) (login, host string, err error) {
	if !utf8.ValidString(user) {
		return "", "", fmt.Errorf("ssh user %q: not valid UTF-8", user)
	}
	i := strings.IndexAny(user, "@:")
	if i < 0 {
		return "", "", fmt.Errorf("ssh user %q: want LOGIN@HOST or LOGIN:HOST", user)
	}
	login, host = user[:i], user[i+1:]
	if login == "" || host == "" {
		return "", "", fmt.Errorf("ssh user %q: empty login or host", user)
	}
	for _, r := range host + login {
		if r == '@' || r == ':' || r == ',' || r == '*' || r == '?' || unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) {
			return "", "", fmt.Errorf("ssh user %q: invalid character %q", user, r)
		}
	}
	return login, host, nil
}

// authorize runs every check on the key offered for user from remote. It is
// pure apart from the Backend lookup, so it can run both when the key is
// offered and again when the key has been proved.
func (s *Server) authorize(ctx context.Context, user string, key ssh.PublicKey, remote net.Addr) (identity, map[string]string, error) {
	login, host, err := ParseTargetUser(user)
	if err != nil {
		return identity{}, nil, err
	}
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return identity{}, nil, fmt.Errorf("%s key is not a certificate", key.Type())
	}
	if cert.CertType != ssh.UserCert {
		return identity{}, nil, fmt.Errorf("certificate serial %d has type %d, want user certificate", cert.Serial, cert.CertType)
	}
	if _, chained := cert.SignatureKey.(*ssh.Certificate); chained {
		return identity{}, nil, fmt.Errorf("certificate serial %d is signed by a certificate, not directly by a CA", cert.Serial)
	}
	if !s.isUserAuthority(cert.SignatureKey) {
		return identity{}, nil, fmt.Errorf("certificate serial %d is signed by an untrusted CA %s", cert.Serial, ssh.FingerprintSHA256(cert.SignatureKey))
	}
	principal := login + "@" + host
	// CheckCert verifies signature, validity at Clock, principal, and
	// refuses unknown critical options; source-address is checked below
	// and again by x/crypto on the final Permissions.
	cc := *s.checker
	cc.SupportedCriticalOptions = append(cc.SupportedCriticalOptions[:len(cc.SupportedCriticalOptions):len(cc.SupportedCriticalOptions)], optSourceAddr)
	if err := cc.CheckCert(principal, cert); err != nil {
		return identity{}, nil, fmt.Errorf("certificate serial %d for %q: %w", cert.Serial, principal, err)
	}
	if cert.Serial == 0 {
		return identity{}, nil, errors.New("certificate serial 0 is not accepted")
	}
	if sa, ok := cert.CriticalOptions[optSourceAddr]; ok {
		if err := checkSourceAddress(remote, sa); err != nil {
			return identity{}, nil, fmt.Errorf("certificate serial %d: %w", cert.Serial, err)
		}
	}
	if cert.ValidBefore == ssh.CertTimeInfinity {
		return identity{}, nil, fmt.Errorf("certificate serial %d never expires", cert.Serial)
	}
	if _, ok := s.cfg.Resolve(host); !ok {
		return identity{}, nil, fmt.Errorf("unknown target host %q", host)
	}
	bctx, cancel := backendCtx(ctx)
	defer cancel()
	// The backend compares the whole certificate with the CA's record of
	// its serial: a serial alone does not prove the CA's door issued it.
	st, err := s.cfg.Backend.CertificateStatus(bctx, cert)
	if err != nil {
		return identity{}, nil, fmt.Errorf("certificate serial %d status: %w", cert.Serial, err)
	}
	if st.Revoked {
		return identity{}, nil, fmt.Errorf("certificate serial %d is revoked", cert.Serial)
	}
	if st.User == "" {
		return identity{}, nil, fmt.Errorf("certificate serial %d: backend reports no user", cert.Serial)
	}
	id := identity{
		User: st.User, Login: login, Host: host, RequestID: st.RequestID,
		Serial: cert.Serial, ValidBefore: time.Unix(int64(cert.ValidBefore), 0),
		RecordInput: st.RecordInput, IdleTimeout: st.IdleTimeout, ForceCommand: cert.CriticalOptions[optForceCmd],
		Extensions: map[string]string{}, Cert: cert,
	}
	for k, v := range cert.Extensions {
		id.Extensions[k] = v
	}
	return id, cert.CriticalOptions, nil
}

// checkSourceAddress reports whether remote is inside the comma-separated
// list of addresses or CIDRs of a source-address option.
func checkSourceAddress(remote net.Addr, list string) error {
	tcp, ok := remote.(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("source-address: remote %v is not TCP", remote)
	}
	for _, a := range strings.Split(list, ",") {
		if ip := net.ParseIP(a); ip != nil {
			if ip.Equal(tcp.IP) {
				return nil
			}
			continue
		}
		_, n, err := net.ParseCIDR(a)
		if err != nil {
			return fmt.Errorf("source-address: bad entry %q", a)
		}
		if n.Contains(tcp.IP) {
			return nil
		}
	}
	return fmt.Errorf("source-address: %s not in %q", tcp.IP, list)
}

// publicKeyHandler answers the client's key offers. Its verdict only decides
// whether the client may prove the key; facts are attached later, in
// VerifiedPublicKeyCallback, to the key that was actually proved.
func (s *Server) publicKeyHandler(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
	_, _, err := s.authorize(ctx, ctx.User(), key, ctx.RemoteAddr())
	if err != nil {
		if st := stateOf(ctx); st != nil && st.firstRejection(key, err.Error()) {
			s.rejectCode(refusalCode(err), ctx.User(), targetOf(ctx.User()), ctx.RemoteAddr().String(), "auth: "+err.Error())
		}
		s.log.Info("key refused", "user", ctx.User(), "client", ctx.RemoteAddr().String(), "err", err)
		return false
	}
	return true
}

// serverConfig is gliderlabs' per-connection ServerConfigCallback.
// gliderlabs fills in PublicKeyCallback (from publicKeyHandler) and host keys;
// we add VerifiedPublicKeyCallback, which x/crypto calls only for the key
// whose signature it verified, and whose Permissions become the connection's
// (CVE-2024-45337: never trust the last key offered).
func (s *Server) serverConfig(ctx gliderssh.Context) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{MaxAuthTries: 6}
	cfg.Ciphers = clientLegCiphers()
	cfg.KeyExchanges, cfg.MACs, cfg.PublicKeyAuthAlgorithms = keyExchanges(), macs(), userKeyAlgorithms()
	cfg.VerifiedPublicKeyCallback = func(conn ssh.ConnMetadata, key ssh.PublicKey, _ *ssh.Permissions, _ string) (*ssh.Permissions, error) {
		id, crit, err := s.authorize(ctx, conn.User(), key, conn.RemoteAddr())
		if err != nil {
			s.rejectCode(refusalCode(err), conn.User(), targetOf(conn.User()), conn.RemoteAddr().String(), "auth: "+err.Error())
			return nil, auditedError{err}
		}
		if st := stateOf(ctx); st != nil {
			st.authenticated()
			st.armExpiry(id.ValidBefore)
			st.watchRevocation(id.Cert)
			st.watchIdle(id.IdleTimeout)
		}
		return id.permissions(crit), nil
	}
	// Failures that never reach our callbacks (a key x/crypto cannot parse,
	// such as a certificate signed by a certificate, or a password or
	// keyboard-interactive attempt, which are not configured) are audited
	// here; "none" probes are not refusals worth a record.
	cfg.AuthLogCallback = func(conn ssh.ConnMetadata, method string, err error) {
		var audited auditedError
		if err == nil || method == "none" || errors.As(err, &audited) || err.Error() == gliderDenied {
			return
		}
		if st := stateOf(ctx); st != nil && !st.firstRejection(nil, method+": "+err.Error()) {
			return
		}
		s.reject(conn.User(), targetOf(conn.User()), conn.RemoteAddr().String(), "auth "+method+": "+err.Error())
	}
	return cfg
}

// clientLegCiphers are the only ciphers the bastion offers engineers:
// AES-GCM runs on the CPU's AES instructions through Go's crypto/aes, while
// x/crypto's ChaCha20-Poly1305 has no assembly on amd64 and was what held
// downloads below OpenSSH's own speed. The client's preference decides among
// ciphers both sides offer, so offering ChaCha20 at all would select it for
// stock OpenSSH clients; every OpenSSH since 6.2 offers AES-GCM.
func clientLegCiphers() []string { return []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM} }

// targetLegCiphers are offered to targets in this order of preference (here
// the bastion is the client, so its order decides).
func targetLegCiphers() []string {
	return []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305}
}

// gliderDenied is the error text gliderlabs returns when PublicKeyHandler
// says no; publicKeyHandler has audited the reason already.
const gliderDenied = "permission denied"

// auditedError marks an authentication error already sent to SessionRejected.
type auditedError struct{ error }

func (e auditedError) Unwrap() error { return e.error }

// targetOf returns the HOST of an SSH user for audit, or "" if unparsable.
func targetOf(user string) string {
	_, host, err := ParseTargetUser(user)
	if err != nil {
		return ""
	}
	return host
}

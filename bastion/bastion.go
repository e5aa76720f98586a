// Package bastion is the recording SSH door of jitssh.
//
// Engineers connect with an OpenSSH user certificate whose principal is
// LOGIN@HOST and name the target in the SSH user ("LOGIN@HOST" or
// "LOGIN:HOST"). The bastion checks the certificate with x/crypto's
// CertChecker, opens its own SSH connection to the target with a fresh key and
// a per-session certificate from the target CA (minted through the Backend),
// and proxies every channel while recording session channels as asciicast v2
// through sessionlog. It never decides policy itself: facts about
// certificates, target certificates and audit records come from the Backend.
package bastion

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/sessionlog"
)

// Target is a host the bastion may connect to.
type Target struct {
	// Name is the logical host name used in principals (LOGIN@Name).
	Name string
	// Address is the "host:port" the bastion dials.
	Address string
	// HostKey optionally pins the target's host key. When nil the target
	// must present a host certificate signed by Config.HostCA whose
	// principals contain Name or the host part of Address.
	HostKey ssh.PublicKey
}

// CertStatus is what the Backend knows about an engineer's certificate.
type CertStatus struct {
	RequestID   string
	User        string
	Revoked     bool
	RecordInput bool
	// IdleTimeout, when not zero, cuts the connection's sessions (end
	// reason "idle") after that long without input from the engineer,
	// with a warning a minute before.
	IdleTimeout time.Duration
}

// TargetCertRequest asks the Backend for a target-CA certificate for one
// bastion-to-target connection.
type TargetCertRequest struct {
	RequestID, SessionID, User, Login, Host string
	// UserSerial is the serial of the engineer's certificate that
	// authenticated the connection; the backend permits on the target what
	// that certificate was issued with.
	UserSerial uint64
	// UserCert is that certificate as the engineer presented it, so that
	// the backend checks it against its record again rather than trust
	// the serial alone.
	UserCert *ssh.Certificate
	// ValidBefore is the engineer's certificate ValidBefore.
	ValidBefore time.Time
	// SourceAddresses become the source-address critical option.
	SourceAddresses []string
	// Key is the bastion's fresh per-session public key.
	Key ssh.PublicKey
}

// AccountRequest names the grant whose target account PrepareAccount
// must make sure of.
type AccountRequest struct {
	RequestID, User, Login, Host string
	// UserSerial is the serial of the engineer's certificate.
	UserSerial uint64
}

// SessionRecord describes one recorded session channel.
type SessionRecord struct {
	ID, RequestID, User, Host, Login string
	Serial, TargetSerial             uint64
	ClientAddr, Command              string
	StartedAt, EndedAt               time.Time
	ExitStatus                       int
	BytesIn, BytesOut                int64
	RecordingPath, RecordingSHA256   string
	RecordingSize                    int64
	EndReason                        string
}

// Backend is what the bastion needs from the rest of jitssh (grant and audit).
// Every method may be called concurrently.
type Backend interface {
	// CertificateStatus reports on an engineer's certificate as presented.
	// An unknown serial, or a certificate that differs from what the CA
	// issued under its serial, must return an error (a RefusalError to
	// name the audit code); the bastion then refuses it.
	CertificateStatus(ctx context.Context, cert *ssh.Certificate) (CertStatus, error)
	// HostCertificateRevoked reports whether the host CA's certificate of a
	// target with this serial was revoked (its host removed). An error
	// refuses the target: the bastion does not guess.
	HostCertificateRevoked(ctx context.Context, serial uint64) (bool, error)
	// TargetCertificateRevoked reports whether the target certificate
	// with this serial, minted by MintTargetCert for a session, was
	// revoked. An error leaves the session as it is (the periodic check of
	// the engineer's certificate still runs).
	TargetCertificateRevoked(ctx context.Context, serial uint64) (bool, error)
	// MintTargetCert returns a target-CA certificate for req.Key with the
	// single principal LOGIN@HOST, recorded in audit before it is returned.
	MintTargetCert(ctx context.Context, req TargetCertRequest) (*ssh.Certificate, error)
	// PrepareAccount makes sure the account the grant logs in as exists
	// on the target before the bastion dials it: an ephemeral grant's
	// account is created at its first session (once, however many
	// sessions ask). It returns nil for grants with a standing login. An
	// error refuses the session; its text is shown to the engineer.
	PrepareAccount(ctx context.Context, req AccountRequest) error
	// SessionStarted records a session before any byte reaches the target.
	// An error refuses the session.
	SessionStarted(ctx context.Context, s SessionRecord) error
	// SessionEnded records the end of a session started with SessionStarted.
	SessionEnded(ctx context.Context, s SessionRecord) error
	// SessionRejected records a refused authentication, target or session;
	// code is "rejected" or the Code of the RefusalError that caused it.
	SessionRejected(ctx context.Context, code, user, target, clientAddr, reason string) error
	// IndexText receives recording lines in batches while a session runs
	// (at least every second and once at the end) for full-text search.
	IndexText(ctx context.Context, sessionID string, lines []sessionlog.Line) error
	// IndexPending stores lines (which may be empty) like IndexText and, in
	// the same transaction, records next as the session's catch-up
	// position: the index then holds the session's first next lines, in
	// recording order, and lacks the rest, which the bastion reads back
	// from the recording (after the session, or by CatchUpIndex after a
	// restart). With done it clears the position instead: the index is
	// complete.
	IndexPending(ctx context.Context, sessionID string, lines []sessionlog.Line, next int64, done bool) error
}

// Config configures a Server. Required fields have no fail-open default.
type Config struct {
	// HostSigner is the bastion's host key; it must be a certificate signer
	// (ssh.NewCertSigner) holding a host certificate from the host CA.
	// Server.SetHostSigner replaces it for later connections.
	HostSigner ssh.Signer
	// UserCAs are the trusted user certificate authorities.
	UserCAs []ssh.PublicKey
	// HostCA verifies target host certificates. Required unless every
	// Target returned by Resolve pins a HostKey.
	HostCA ssh.PublicKey
	// Resolve maps the HOST of LOGIN@HOST to a Target.
	Resolve func(host string) (Target, bool)
	// Backend is required.
	Backend Backend
	// RecordingDir receives RecordingDir/YYYY/MM/DD/SESSIONID.cast.zst (UTC).
	RecordingDir string
	// OpenRecording opens a finished recording by the path (or the
	// recordings store's name) a session row holds, for the search index
	// catch-up; nil means os.Open, which suits recordings that stay where
	// the bastion wrote them.
	OpenRecording func(path string) (io.ReadCloser, error)
	// RecordingFailOpen turns "record or refuse" into a logged warning.
	RecordingFailOpen bool
	// Clock decides certificate validity and expiry; default time.Now.
	Clock func() time.Time
	// ExpiryWarning is how long before the certificate expires a warning
	// is written to the session; default 1m.
	ExpiryWarning time.Duration
	// RevocationInterval is how often the certificate of every live
	// connection is looked up again, so that revoking a grant ends its
	// sessions, not only new ones; default 5s, negative turns it off.
	RevocationInterval time.Duration
	// RevocationBackstop replaces RevocationInterval while SetFeedHealthy
	// says revocations arrive through CertificateRevoked; default
	// DefaultRevocationBackstop (30s).
	RevocationBackstop time.Duration
	// EgressAddresses go into the source-address option of target
	// certificates. Default: per target, the local address of this
	// machine's route to it, as /32 or /128 (set this behind NAT, where
	// targets see another address).
	EgressAddresses []string
	// AuthTimeout bounds the time from accept to a proved certificate
	// (banner, key exchange, authentication); a connection still
	// unauthenticated then is closed. Default DefaultAuthTimeout.
	AuthTimeout time.Duration
	// MaxUnauthenticated caps connections not yet authenticated; one more
	// is closed at accept, counted (RefusedConnections) and logged once a
	// minute. Default DefaultMaxUnauthenticated.
	MaxUnauthenticated int
	// MaxUnauthenticatedPerAddr is the same cap per source IP address.
	// Default DefaultMaxUnauthenticatedPerAddr.
	MaxUnauthenticatedPerAddr int
	// Logger receives operational logs; default discards.
	Logger *slog.Logger
}

// dialTimeout bounds the TCP dial plus SSH handshake to a target.
const dialTimeout = 10 * time.Second

// backendTimeout bounds each Backend call.
const backendTimeout = 10 * time.Second

// prepareTimeout bounds PrepareAccount, which may create an account on
// the target over its own SSH connection.
const prepareTimeout = 60 * time.Second

// Validate reports the first missing or unusable required field.
func (c Config) Validate() error {
	if c.HostSigner == nil {
		return errors.New("config: HostSigner is required (a host certificate signer; no throwaway keys)")
	}
	cert, ok := c.HostSigner.PublicKey().(*ssh.Certificate)
	if !ok {
		return fmt.Errorf("config: HostSigner must hold a host certificate, got plain %s key", c.HostSigner.PublicKey().Type())
	}
	if cert.CertType != ssh.HostCert {
		return fmt.Errorf("config: HostSigner certificate has type %d, want host certificate", cert.CertType)
	}
	if len(c.UserCAs) == 0 {
		return errors.New("config: UserCAs is required")
	}
	for i, k := range c.UserCAs {
		if k == nil {
			return fmt.Errorf("config: UserCAs[%d] is nil", i)
		}
		if _, ok := k.(*ssh.Certificate); ok {
			return fmt.Errorf("config: UserCAs[%d] is a certificate, want a CA public key", i)
		}
	}
	if c.Resolve == nil {
		return errors.New("config: Resolve is required")
	}
	if c.Backend == nil {
		return errors.New("config: Backend is required")
	}
	if c.RecordingDir == "" {
		return errors.New("config: RecordingDir is required")
	}
	if c.AuthTimeout < 0 || c.MaxUnauthenticated < 0 || c.MaxUnauthenticatedPerAddr < 0 {
		return fmt.Errorf("config: negative bound: AuthTimeout %s, MaxUnauthenticated %d, MaxUnauthenticatedPerAddr %d",
			c.AuthTimeout, c.MaxUnauthenticated, c.MaxUnauthenticatedPerAddr)
	}
	if c.ExpiryWarning < 0 {
		return fmt.Errorf("config: ExpiryWarning %s is negative", c.ExpiryWarning)
	}
	for _, a := range c.EgressAddresses {
		if _, _, err := net.ParseCIDR(a); err != nil {
			return fmt.Errorf("config: EgressAddresses entry %q: %w", a, err)
		}
	}
	return nil
}

// Server is a recording bastion. Create it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	checker *ssh.CertChecker
	gl      *gliderssh.Server
	limiter *connLimiter
	// encoders lets the sessions' recordings encode in turns on all but
	// one processor, leaving one for forwarding (issue 15).
	encoders *sessionlog.EncoderPool
	// catchups are the sessions' indexers and their catch-ups from the
	// recordings, which Close stops.
	catchups *catchUps

	mu       sync.Mutex
	closed   bool
	conns    map[*connState]struct{}
	sessions map[*session]struct{}
	wg       sync.WaitGroup // session and forwarding goroutines

	serials     serialIndex // live connections by certificate serial (serials.go)
	feedHealthy atomic.Bool // revocations arrive through CertificateRevoked
}

// New validates cfg, fills defaults and returns a Server ready to Serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkHostSigner(cfg.HostSigner); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ExpiryWarning == 0 {
		cfg.ExpiryWarning = time.Minute
	}
	if cfg.RevocationInterval == 0 {
		cfg.RevocationInterval = 5 * time.Second
	}
	cfg.RevocationBackstop = cmp.Or(cfg.RevocationBackstop, DefaultRevocationBackstop)
	cfg.AuthTimeout = cmp.Or(cfg.AuthTimeout, DefaultAuthTimeout)
	cfg.MaxUnauthenticated = cmp.Or(cfg.MaxUnauthenticated, DefaultMaxUnauthenticated)
	cfg.MaxUnauthenticatedPerAddr = cmp.Or(cfg.MaxUnauthenticatedPerAddr, DefaultMaxUnauthenticatedPerAddr)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		limiter:  newConnLimiter(cfg.MaxUnauthenticated, cfg.MaxUnauthenticatedPerAddr, log),
		encoders: sessionlog.NewEncoderPool(runtime.GOMAXPROCS(0) - 1),
		catchups: newCatchUps(),
		conns:    map[*connState]struct{}{},
		sessions: map[*session]struct{}{},
	}
	s.checker = &ssh.CertChecker{
		SupportedCriticalOptions: []string{"force-command"},
		IsUserAuthority:          s.isUserAuthority,
		Clock:                    cfg.Clock,
	}
	s.gl = &gliderssh.Server{
		HostSigners: []gliderssh.Signer{cfg.HostSigner},
		Version:     "jitssh",
		// A non-nil PublicKeyHandler keeps gliderlabs from setting
		// NoClientAuth; no password or keyboard-interactive handler is
		// set, so public key is the only method offered.
		PublicKeyHandler:     s.publicKeyHandler,
		ConnCallback:         s.connCallback,
		ServerConfigCallback: s.serverConfig,
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"session":                        s.handleSession,
			"direct-tcpip":                   s.handleDirect,
			"direct-streamlocal@openssh.com": s.handleDirect,
		},
		RequestHandlers: map[string]gliderssh.RequestHandler{
			"tcpip-forward":                          s.handleGlobalForward,
			"cancel-tcpip-forward":                   s.handleGlobalForward,
			"streamlocal-forward@openssh.com":        s.handleGlobalForward,
			"cancel-streamlocal-forward@openssh.com": s.handleGlobalForward,
		},
		// Subsystems are proxied by the session handler, never run here.
		SubsystemHandlers: map[string]gliderssh.SubsystemHandler{},
	}
	return s, nil
}

// ErrServerClosed is what Serve returns after Close or Shutdown.
var ErrServerClosed = gliderssh.ErrServerClosed

// Serve accepts connections on l until Close or Shutdown. It returns
// ErrServerClosed after Close or Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		l.Close()
		return gliderssh.ErrServerClosed
	}
	return s.gl.Serve(l)
}

// Close stops accepting, ends every connection and session, and returns after
// every recording has been finalised and SessionEnded called, and the search
// index catch-ups have stopped (each keeps its stored position).
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*connState, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	err := s.gl.Close()
	for _, c := range conns {
		c.terminate("bastion shutting down")
	}
	// gliderlabs' Close does not wait for its connection goroutines;
	// Shutdown after Close does.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := s.gl.Shutdown(ctx); serr != nil && err == nil && !errors.Is(serr, net.ErrClosed) {
		err = serr
	}
	s.wg.Wait()
	s.catchups.stop()
	return err
}

// Shutdown stops accepting and waits for open connections to end by
// themselves or ctx to be done; it does not cut sessions (use Close). Once
// they have ended it stops the search index catch-ups still reading
// recordings; each keeps its stored position (see CatchUpIndex).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.gl.Shutdown(ctx)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.catchups.stop()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LiveSessions returns a snapshot of the session channels now open.
func (s *Server) LiveSessions() []SessionRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionRecord, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss.snapshot())
	}
	return out
}

// goTracked runs fn on a goroutine that Close waits for. It reports false
// (and does not run fn) once the server is closed.
func (s *Server) goTracked(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

func (s *Server) isUserAuthority(auth ssh.PublicKey) bool {
	b := auth.Marshal()
	for _, ca := range s.cfg.UserCAs {
		if string(ca.Marshal()) == string(b) {
			return true
		}
	}
	return false
}

// backendCtx returns a context bounded by backendTimeout.
func backendCtx(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	return context.WithTimeout(context.WithoutCancel(parent), backendTimeout)
}

// reject audits a refusal; an audit failure is logged, never hidden.
func (s *Server) reject(user, target, clientAddr, reason string) {
	s.rejectCode(codeRejected, user, target, clientAddr, reason)
}

// rejectCode is reject with the audit code of the refusal.
func (s *Server) rejectCode(code, user, target, clientAddr, reason string) {
	ctx, cancel := backendCtx(context.Background())
	defer cancel()
	if err := s.cfg.Backend.SessionRejected(ctx, code, user, target, clientAddr, reason); err != nil {
		s.log.Error("audit session rejection", "user", user, "target", target, "client", clientAddr, "reason", reason, "err", err)
	}
}

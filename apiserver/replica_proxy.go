package apiserver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
)

// proxiedHeader marks a request one replica forwarded to another: it is
// never forwarded again, so two replicas can never bounce a request
// between them (a caller who sets it only gets this replica's own answer).
const proxiedHeader = "X-Jit-Proxied-By"

// PinnedTLS is the client TLS configuration of a replica towards the
// others: the peer must present exactly leaf (DER), the API certificate
// every replica serves, as jit itself pins it; names are not checked, since
// the pin is stricter than any name.
func PinnedTLS(leaf []byte) *tls.Config {
	want := bytes.Clone(leaf)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The pin below replaces chain and name verification.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("replica's API certificate is not this replica's own (replicas serve the same TLS certificate)")
			}
			return nil
		},
	}
}

// proxyLive serves a live session's recording through the replica whose
// bastion records it (ProxyLive); other sessions are next's.
func (s *Server) proxyLive(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.cfg.Replica.ID == "" || r.Header.Get(proxiedHeader) != "" {
			return next(w, r)
		}
		x, err := s.cfg.Store.Session(r.Context(), r.PathValue("id"))
		if err != nil {
			return next(w, r) // next answers an unknown session as it always has
		}
		if done, err := s.ProxyLive(w, r, x); done || err != nil {
			return err
		}
		return next(w, r)
	}
}

// ProxyLive forwards r to the replica recording x when x is live on
// another replica, since only that replica's spool holds the growing
// file, and reports whether it did. The request goes with the caller's
// credentials unchanged (the owner checks them and records the access) to
// the owner's advertised URL, taken from the registry and nowhere else,
// over the pinned certificate. A down owner is a replica_unavailable
// error. Ended sessions, this replica's and those from before replicas
// are left to the caller (false, nil), as is a request already proxied.
func (s *Server) ProxyLive(w http.ResponseWriter, r *http.Request, x audit.Session) (bool, error) {
	rc := s.cfg.Replica
	if rc.ID == "" || r.Header.Get(proxiedHeader) != "" || !x.EndedAt.IsZero() || x.Replica == "" || x.Replica == rc.ID {
		return false, nil
	}
	owner, now, err := s.cfg.Store.Replica(r.Context(), x.Replica)
	if errors.Is(err, audit.ErrNotFound) || (err == nil && !s.replicaUp(owner, now)) {
		return false, wireErr(http.StatusServiceUnavailable, api.CodeReplicaUnavailable,
			"session %s is live on replica %s, which is down: its recording is in that replica's spool until it restarts", x.ID, x.Replica)
	}
	if err != nil {
		return false, storeError(err)
	}
	target, err := url.Parse(owner.AdvertiseURL)
	if err != nil || target.Scheme != "https" || target.Host == "" {
		return false, wireErr(http.StatusServiceUnavailable, api.CodeReplicaUnavailable, "replica %s advertises %q, not an https URL", owner.ID, owner.AdvertiseURL)
	}
	s.proxyTo(w, r, owner, target)
	return true, nil
}

// proxyTo forwards r to the owner replica at target and streams its answer.
func (s *Server) proxyTo(w http.ResponseWriter, r *http.Request, owner audit.Replica, target *url.URL) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(proxiedHeader, s.cfg.Replica.ID)
			// The caller's own Authorization header is kept as it came.
		},
		Transport:     proxyTransport(s.cfg.Replica.ProxyTLS, proxyDialTimeout),
		FlushInterval: -1, // a follow is streamed as it comes
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.cfg.Logger.Warn("proxy to the replica recording a live session", "replica", owner.ID, "url", owner.AdvertiseURL, "err", err)
			writeJSON(w, http.StatusServiceUnavailable, api.ErrorBody{Error: api.ErrorDetail{Code: api.CodeReplicaUnavailable,
				Message: fmt.Sprintf("replica %s, which records this live session, did not answer", owner.ID)}})
		},
	}
	rp.ServeHTTP(&streamResponse{ResponseWriter: w, sw: newStream(w)}, r)
}

// proxyDialTimeout bounds the connect to an owner replica: one that is
// blackholed (its host gone, a firewall dropping) would otherwise hold
// each watch for the kernel's connect timeout, about two minutes.
const proxyDialTimeout = 10 * time.Second

// proxyTransport is the live-watch proxy's transport: every step before
// the owner's answer starts is bounded; the stream after it may be long.
func proxyTransport(tlsConfig *tls.Config, dial time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig.Clone(),
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     true,
	}
}

// streamResponse is a ResponseWriter whose writes and flushes push the
// connection's write deadline on, as streamWriter does.
type streamResponse struct {
	http.ResponseWriter
	sw *streamWriter
}

func (s *streamResponse) Write(p []byte) (int, error) { return s.sw.Write(p) }

// Flush sends what is buffered.
func (s *streamResponse) Flush() { s.sw.Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (s *streamResponse) Unwrap() http.ResponseWriter { return s.ResponseWriter }

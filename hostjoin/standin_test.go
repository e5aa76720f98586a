package hostjoin_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/tlspin"
)

// standIn is a TLS httptest server speaking the issue 10 contract's wire
// types for POST /v1/hosts/join and the renewal challenge and answer. It
// stands in for jitd in these tests of the client flow only, because the
// real endpoints are written on another branch at the same time; the e2e
// test through a real jitd comes with the merge. It signs with CA keys the
// test holds, so the test can check what a stock sshd does with them.
type standIn struct {
	t           *testing.T
	srv         *httptest.Server
	hostCA      ssh.Signer
	targetCA    ssh.Signer
	fingerprint string

	mu       sync.Mutex
	token    string
	host     string
	logins   []string
	krl      []byte
	hostKey  ssh.PublicKey
	nonces   map[string]bool
	calls    int
	certs    map[string]string // host key -> certificate, with sameCert
	sameCert bool              // answer the same certificate for the same key
	badCert  bool              // certify another key than the one sent
	aged     bool              // issue certificates with two thirds of their validity gone
}

func newStandIn(t *testing.T, host string, logins ...string) *standIn {
	t.Helper()
	s := &standIn{
		t: t, hostCA: testkit.Signer(t), targetCA: testkit.Signer(t),
		token: "jhj_" + base64.RawURLEncoding.EncodeToString(randBytes(t, 32)),
		host:  host, logins: logins, nonces: map[string]bool{}, certs: map[string]string{},
	}
	s.krl = makeKRL(t, s.targetCA.PublicKey())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hosts/join", s.join)
	mux.HandleFunc("POST /v1/hosts/{name}/renew/challenge", s.challenge)
	mux.HandleFunc("POST /v1/hosts/{name}/renew", s.renew)
	mux.HandleFunc("GET /v1/krl", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls++
		_, _ = w.Write(s.krl)
	})
	s.srv = httptest.NewTLSServer(mux)
	t.Cleanup(s.srv.Close)
	s.fingerprint = tlspin.Fingerprint(s.srv.Certificate().Raw)
	return s
}

func (s *standIn) URL() string { return s.srv.URL }

// set changes the stand-in's state under its lock.
func (s *standIn) set(fn func(s *standIn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *standIn) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
}

func (s *standIn) join(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	var req api.HostJoinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, api.CodeBadJSON, err.Error())
		return
	}
	if req.Token != s.token {
		fail(w, http.StatusUnauthorized, api.CodeJoinTokenInvalid, "join token unknown")
		return
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.HostKey))
	if err != nil {
		fail(w, http.StatusBadRequest, api.CodeInvalidPublicKey, err.Error())
		return
	}
	s.hostKey = k
	s.answer(w, k)
}

func (s *standIn) challenge(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	n := hex.EncodeToString(randBytes(s.t, 16))
	s.nonces[n] = true
	_ = json.NewEncoder(w).Encode(api.HostChallengeResponse{Nonce: n, ExpiresAt: time.Now().Add(time.Minute)})
}

func (s *standIn) renew(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	var req api.HostRenewRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !s.nonces[req.Nonce] || r.PathValue("name") != s.host || s.hostKey == nil {
		fail(w, http.StatusUnauthorized, api.CodeBadChallenge, "unknown nonce or host")
		return
	}
	delete(s.nonces, req.Nonce)
	raw, _ := base64.StdEncoding.DecodeString(req.Signature)
	var sig ssh.Signature
	if err := ssh.Unmarshal(raw, &sig); err != nil || sig.Format == ssh.KeyAlgoRSA || s.hostKey.Verify(api.HostRenewMessage(s.host, req.Nonce, s.fingerprint), &sig) != nil {
		fail(w, http.StatusUnauthorized, api.CodeBadSignature, "signature does not verify with the host key, or is SHA-1 ssh-rsa")
		return
	}
	s.answer(w, s.hostKey)
}

// answer certifies k (principals: the host name and 127.0.0.1) and writes
// the join answer. The caller holds s.mu.
func (s *standIn) answer(w http.ResponseWriter, k ssh.PublicKey) {
	certKey := k
	if s.badCert {
		certKey = testkit.Signer(s.t).PublicKey()
	}
	line := s.certs[string(certKey.Marshal())]
	if line == "" || !s.sameCert {
		now := time.Now()
		if s.aged {
			now = now.Add(-21 * 24 * time.Hour)
		}
		cert := &ssh.Certificate{
			Key: certKey, Serial: uint64(now.UnixNano()), CertType: ssh.HostCert, KeyId: "host:" + s.host,
			ValidPrincipals: []string{s.host, "127.0.0.1"},
			ValidAfter:      uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(30 * 24 * time.Hour).Unix()),
		}
		if err := cert.SignCert(rand.Reader, s.hostCA); err != nil {
			fail(w, http.StatusInternalServerError, api.CodeSigningFailed, err.Error())
			return
		}
		line = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
		s.certs[string(certKey.Marshal())] = line
	}
	_ = json.NewEncoder(w).Encode(api.HostJoinResponse{
		Host: s.host, Address: "127.0.0.1:22", HostCertificate: line,
		TargetCA: authorized(s.targetCA.PublicKey()), HostCA: authorized(s.hostCA.PublicKey()),
		KRL: s.krl, Logins: s.logins, Bastion: "127.0.0.1:2222", RenewBefore: time.Now().Add(20 * 24 * time.Hour),
	})
}

func authorized(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// makeKRL makes an OpenSSH KRL with ssh-keygen -k for CA key ca, revoking
// serials.
func makeKRL(t testing.TB, ca ssh.PublicKey, serials ...uint64) []byte {
	t.Helper()
	sshdtest.Require(t, "ssh-keygen")
	dir := t.TempDir()
	caFile, spec, out := filepath.Join(dir, "ca.pub"), filepath.Join(dir, "spec"), filepath.Join(dir, "krl")
	var b bytes.Buffer
	for _, s := range serials {
		b.WriteString("serial: " + strconv.FormatUint(s, 10) + "\n")
	}
	if err := os.WriteFile(caFile, ssh.MarshalAuthorizedKey(ca), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command(sshdtest.Path("ssh-keygen"), "-k", "-f", out, "-s", caFile, spec).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -k: %v\n%s", err, o)
	}
	k, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

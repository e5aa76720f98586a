package jitclient

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/tlspin"
)

// fakeDaemon is a TLS server that speaks the API's real wire types for
// the client-side logic under test (waiting, storing, paging). The real
// daemon is exercised by the e2e tests through the jit binary.
type fakeDaemon struct {
	t      *testing.T
	srv    *httptest.Server
	signer ssh.Signer

	mu sync.Mutex
	// issueAtOnce answers a new request with its certificate.
	issueAtOnce bool
	// states are the answers to successive polls; the last one repeats.
	states  []string
	polls   int
	pubKey  string // the key of the last request made
	redeems int
	events  []api.Event
	krl     []byte
	// enrolled is the one public key (authorized_keys line, trimmed) that
	// may log in.
	enrolled string
	// recording is served as every session's asciicast; purposes lists
	// the purpose of each download.
	recording string
	purposes  []string
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{t: t, signer: testkit.Signer(t)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/requests", f.create)
	mux.HandleFunc("GET /v1/requests/{id}", f.poll)
	mux.HandleFunc("POST /v1/requests/{id}/certificate", f.redeem)
	mux.HandleFunc("GET /v1/audit/events", f.listEvents)
	mux.HandleFunc("GET /v1/krl", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(f.krl) })
	mux.HandleFunc("POST /v1/login/challenge", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, api.ChallengeResponse{Nonce: "nonce", ExpiresAt: time.Now().Add(time.Minute)})
	})
	mux.HandleFunc("POST /v1/login", f.login)
	mux.HandleFunc("GET /v1/ca", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, api.CAResponse{Bastion: "bastion:2222", HostCA: "ssh-ed25519 AAAA host-ca"})
	})
	mux.HandleFunc("GET /v1/sessions/{id}/recording", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.purposes = append(f.purposes, r.URL.Query().Get("purpose"))
		_, _ = w.Write([]byte(f.recording))
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a Client of the fake daemon storing its state in a
// fresh directory.
func (f *fakeDaemon) client() *Client {
	f.t.Helper()
	dir := creds.Dir{Config: f.t.TempDir(), State: f.t.TempDir()}
	if err := dir.SaveConfig(creds.Config{CA: f.srv.URL, Fingerprint: tlspin.Fingerprint(f.srv.Certificate().Raw), User: "alice", Token: "tok"}); err != nil {
		f.t.Fatal(err)
	}
	c, err := Open(dir, "")
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.Close)
	c.Poll = 5 * time.Millisecond
	return c
}

func (f *fakeDaemon) request(id, state string) api.Request {
	return api.Request{ID: id, User: "alice", Login: "deploy", Host: "web1", State: state, ApprovalsNeeded: 1, DecidedBy: "bob", DecisionReason: "no"}
}

func (f *fakeDaemon) create(w http.ResponseWriter, r *http.Request) {
	var body api.CreateRequestBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: api.ErrorDetail{Code: "bad_request", Message: err.Error()}})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pubKey = body.PublicKey
	if f.issueAtOnce {
		writeJSON(w, http.StatusOK, api.RequestResponse{Request: f.request("r1", api.StateIssued), Certificate: f.certify()})
		return
	}
	writeJSON(w, http.StatusOK, api.RequestResponse{Request: f.request("r1", "pending")})
}

func (f *fakeDaemon) poll(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	state := f.states[min(f.polls, len(f.states)-1)]
	f.polls++
	if state == "error" {
		writeJSON(w, http.StatusInternalServerError, api.ErrorBody{Error: api.ErrorDetail{Code: "internal", Message: "boom"}})
		return
	}
	writeJSON(w, http.StatusOK, api.RequestResponse{Request: f.request(r.PathValue("id"), state)})
}

func (f *fakeDaemon) redeem(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redeems++
	writeJSON(w, http.StatusOK, api.RequestResponse{Request: f.request(r.PathValue("id"), api.StateIssued), Certificate: f.certify()})
}

// certify signs the last submitted key for deploy@web1, valid ten minutes.
func (f *fakeDaemon) certify() string {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(f.pubKey))
	if err != nil {
		f.t.Errorf("submitted public key: %v", err)
		return ""
	}
	cert := &ssh.Certificate{Key: pub, Serial: 42, CertType: ssh.UserCert, KeyId: "alice-r1", ValidPrincipals: []string{"deploy@web1"},
		ValidAfter: uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(10 * time.Minute).Unix())}
	if err := cert.SignCert(rand.Reader, f.signer); err != nil {
		f.t.Errorf("sign: %v", err)
		return ""
	}
	return string(ssh.MarshalAuthorizedKey(cert))
}

// listEvents pages the way the daemon does: events after ?after, at most
// ?limit of them.
func (f *fakeDaemon) listEvents(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.Event{}
	for _, ev := range f.events {
		if ev.Seq > after && (limit == 0 || len(out) < limit) {
			out = append(out, ev)
		}
	}
	writeJSON(w, http.StatusOK, api.EventsResponse{Events: out})
}

func (f *fakeDaemon) login(w http.ResponseWriter, r *http.Request) {
	var body api.LoginRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: api.ErrorDetail{Code: "bad_request", Message: err.Error()}})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if body.PublicKey != f.enrolled {
		writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: api.ErrorDetail{Code: api.CodeKeyNotEnrolled, Message: "key not enrolled"}})
		return
	}
	writeJSON(w, http.StatusOK, api.LoginResponse{Token: "new-token", User: body.User, ExpiresAt: time.Now().Add(time.Hour)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

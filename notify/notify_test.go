package notify_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/notify"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fixed time of the test clock.
var t0 = time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)

func clock() time.Time { return t0 }

// waitLimit bounds every wait in these tests; it is a hang guard, not a
// timing target.
const waitLimit = 10 * time.Second

func newSecret(t testing.TB) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return notify.SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint on 127.0.0.1 whose answer to the n-th
// request (from 1) is status(n); a nil status answers 200. hang makes it wait
// for release or for the client to give up.
type receiver struct {
	srv     *httptest.Server
	status  func(n int) int
	hang    bool
	release chan struct{}

	mu  sync.Mutex
	got []delivery
}

func newReceiver(t testing.TB, status func(n int) int, hang bool) *receiver {
	t.Helper()
	r := &receiver{status: status, hang: hang, release: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.unblock()
		r.srv.Close()
	})
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, delivery{header: req.Header.Clone(), body: body})
	n := len(r.got)
	r.mu.Unlock()
	if r.hang {
		select {
		case <-r.release:
		case <-req.Context().Done():
			return
		}
	}
	code := http.StatusOK
	if r.status != nil {
		code = r.status(n)
	}
	w.WriteHeader(code)
}

func (r *receiver) unblock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func newNotifier(t testing.TB, eps []notify.Endpoint, opts notify.Options) *notify.Notifier {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = clock
	}
	if opts.Backoff == 0 {
		opts.Backoff = 5 * time.Millisecond
	}
	n, err := notify.New(eps, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

// closeWithin calls n.Close and fails if it does not return within waitLimit.
func closeWithin(t testing.TB, n *notify.Notifier) {
	t.Helper()
	done := make(chan struct{})
	go func() { n.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
}

// hmacSignature computes a Standard Webhooks signature from the spec, without
// the package: base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)),
// key being the base64-decoded part of the secret after "whsec_".
func hmacSignature(t testing.TB, secret, id, timestamp string, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestNewValidates(t *testing.T) {
	good := newSecret(t)
	short := notify.SecretPrefix + base64.StdEncoding.EncodeToString([]byte("only8byt"))
	tests := []struct {
		name    string
		ep      notify.Endpoint
		wantErr string
	}{
		{name: "https signed", ep: notify.Endpoint{URL: "https://hooks.example/jit", Secret: good}},
		{name: "http unsigned", ep: notify.Endpoint{URL: "http://127.0.0.1:9/hook"}},
		{name: "empty url", ep: notify.Endpoint{URL: ""}, wantErr: `url ""`},
		{name: "other scheme", ep: notify.Endpoint{URL: "ftp://hooks.example/x"}, wantErr: "ftp://hooks.example/x"},
		{name: "no host", ep: notify.Endpoint{URL: "https:///path"}, wantErr: "https:///path"},
		{name: "not a url", ep: notify.Endpoint{URL: "://"}, wantErr: "url"},
		{name: "relative", ep: notify.Endpoint{URL: "/hook"}, wantErr: "/hook"},
		{name: "secret without prefix", ep: notify.Endpoint{URL: "https://h.example", Secret: strings.TrimPrefix(good, "whsec_")}, wantErr: "whsec_"},
		{name: "secret not base64", ep: notify.Endpoint{URL: "https://h.example", Secret: "whsec_not*base64!"}, wantErr: "base64"},
		{name: "secret too short", ep: notify.Endpoint{URL: "https://h.example", Secret: short}, wantErr: "16 bytes"},
		{name: "secret only the prefix", ep: notify.Endpoint{URL: "https://h.example", Secret: "whsec_"}, wantErr: "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := []notify.Endpoint{{URL: "https://first.example/ok"}, tt.ep}
			n, err := notify.New(eps, notify.Options{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				n.Close()
				return
			}
			if n != nil {
				n.Close()
				t.Fatal("New returned a notifier with an error")
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "webhook 2") {
				t.Fatalf("New: %v, want an error about webhook 2 naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestSignedDelivery(t *testing.T) {
	secret := newSecret(t)
	rcv := newReceiver(t, nil, false)
	n := newNotifier(t, []notify.Endpoint{{URL: rcv.srv.URL + "/hook", Secret: secret}}, notify.Options{})
	n.Send(notify.Message{
		Type: "request.approved", Timestamp: t0.Add(-time.Second), Text: "approved: root@db1 for alice by bob",
		Data: map[string]string{"request_id": "req_1", "user": "alice"},
	})
	closeWithin(t, n)
	got := rcv.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	d := got[0]
	id, ts := d.header.Get("webhook-id"), d.header.Get("webhook-timestamp")
	if id == "" || ts != strconv.FormatInt(t0.Unix(), 10) {
		t.Fatalf("webhook-id %q, webhook-timestamp %q; want an id and %d", id, ts, t0.Unix())
	}
	if ct := d.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	want := "v1," + hmacSignature(t, secret, id, ts, d.body)
	if sigs := strings.Fields(d.header.Get("webhook-signature")); len(sigs) != 1 || sigs[0] != want {
		t.Errorf("webhook-signature %q, want %q (computed from the spec)", d.header.Get("webhook-signature"), want)
	}
	if err := notify.Verify(secret, d.header, d.body, t0, 5*time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	var body struct {
		Type      string            `json:"type"`
		Timestamp time.Time         `json:"timestamp"`
		Text      string            `json:"text"`
		Data      map[string]string `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(d.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %s: %v", d.body, err)
	}
	if body.Type != "request.approved" || !body.Timestamp.Equal(t0.Add(-time.Second)) || body.Text != "approved: root@db1 for alice by bob" ||
		body.Data["request_id"] != "req_1" || body.Data["user"] != "alice" {
		t.Errorf("body %s", d.body)
	}
	if st := n.Stats(); st != (notify.Stats{Delivered: 1}) {
		t.Errorf("stats %+v, want one delivered", st)
	}

	// What a receiver must refuse.
	other := newSecret(t)
	tests := []struct {
		name    string
		secret  string
		edit    func(h http.Header)
		body    []byte
		now     time.Time
		wantErr string
	}{
		{name: "genuine", secret: secret, now: t0},
		{name: "a second signature among others", secret: secret, now: t0, edit: func(h http.Header) {
			h.Set("webhook-signature", "v1,bm90IGl0 "+h.Get("webhook-signature"))
		}},
		{name: "within tolerance", secret: secret, now: t0.Add(4 * time.Minute)},
		{name: "other secret", secret: other, now: t0, wantErr: "no webhook-signature matches"},
		{name: "tampered body", secret: secret, now: t0, body: []byte(strings.Replace(string(d.body), "alice", "mallo", 1)), wantErr: "no webhook-signature matches"},
		{name: "other id", secret: secret, now: t0, edit: func(h http.Header) { h.Set("webhook-id", id+"x") }, wantErr: "no webhook-signature matches"},
		{name: "no id", secret: secret, now: t0, edit: func(h http.Header) { h.Del("webhook-id") }, wantErr: "webhook-id"},
		{name: "replayed later", secret: secret, now: t0.Add(6 * time.Minute), wantErr: "tolerance"},
		{name: "from the future", secret: secret, now: t0.Add(-6 * time.Minute), wantErr: "tolerance"},
		{name: "timestamp not a number", secret: secret, now: t0, edit: func(h http.Header) { h.Set("webhook-timestamp", "soon") }, wantErr: "webhook-timestamp"},
		{name: "no signature", secret: secret, now: t0, edit: func(h http.Header) { h.Del("webhook-signature") }, wantErr: "no webhook-signature matches"},
		{name: "signature of v0 scheme", secret: secret, now: t0, edit: func(h http.Header) {
			h.Set("webhook-signature", strings.Replace(h.Get("webhook-signature"), "v1,", "v0,", 1))
		}, wantErr: "no webhook-signature matches"},
		{name: "secret without prefix", secret: strings.TrimPrefix(secret, "whsec_"), now: t0, wantErr: "whsec_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := d.header.Clone()
			if tt.edit != nil {
				tt.edit(h)
			}
			b := d.body
			if tt.body != nil {
				b = tt.body
			}
			err := notify.Verify(tt.secret, h, b, tt.now, 5*time.Minute)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Verify: %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestSignMatchesSpec(t *testing.T) {
	// The Standard Webhooks reference test vector.
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	got := notify.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %q, want the spec's %q", got, want)
	}
}

func TestUnsignedEndpoint(t *testing.T) {
	rcv := newReceiver(t, nil, false)
	n := newNotifier(t, []notify.Endpoint{{URL: rcv.srv.URL}}, notify.Options{})
	n.Send(notify.Message{Type: "request.created", Timestamp: t0, Text: "alice asks for root@db1"})
	closeWithin(t, n)
	got := rcv.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	if sig, ok := got[0].header["Webhook-Signature"]; ok {
		t.Errorf("unsigned endpoint got webhook-signature %q", sig)
	}
	var slack struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(got[0].body, &slack); err != nil || slack.Text != "alice asks for root@db1" {
		t.Errorf("body %s is not a Slack message with the text: %v", got[0].body, err)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		attempts  int
		status    func(n int) int
		messages  int
		wantStats notify.Stats
		wantCalls int
	}{
		{name: "500 twice then success", attempts: 5, messages: 1,
			status: func(n int) int {
				if n <= 2 {
					return http.StatusInternalServerError
				}
				return http.StatusNoContent
			},
			wantStats: notify.Stats{Delivered: 1, Retries: 2}, wantCalls: 3},
		{name: "always failing", attempts: 3, messages: 2,
			status:    func(int) int { return http.StatusServiceUnavailable },
			wantStats: notify.Stats{Failed: 2, Retries: 4}, wantCalls: 6},
		{name: "a redirect is a failure, not followed", attempts: 2, messages: 1,
			status:    func(int) int { return http.StatusTemporaryRedirect },
			wantStats: notify.Stats{Failed: 1, Retries: 1}, wantCalls: 2},
		{name: "single attempt", attempts: 1, messages: 1,
			status:    func(int) int { return http.StatusBadGateway },
			wantStats: notify.Stats{Failed: 1}, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := newSecret(t)
			rcv := newReceiver(t, tt.status, false)
			n := newNotifier(t, []notify.Endpoint{{URL: rcv.srv.URL, Secret: secret}}, notify.Options{Attempts: tt.attempts, Backoff: 5 * time.Millisecond})
			for i := range tt.messages {
				n.Send(notify.Message{Type: "request.created", Timestamp: t0, Text: fmt.Sprint("message ", i)})
			}
			closeWithin(t, n)
			if st := n.Stats(); st != tt.wantStats {
				t.Errorf("stats %+v, want %+v", st, tt.wantStats)
			}
			got := rcv.deliveries()
			if len(got) != tt.wantCalls {
				t.Fatalf("%d requests, want %d", len(got), tt.wantCalls)
			}
			ids := map[string]int{}
			for _, d := range got {
				ids[d.header.Get("webhook-id")]++
				if err := notify.Verify(secret, d.header, d.body, t0, time.Minute); err != nil {
					t.Errorf("retry not signed: %v", err)
				}
			}
			if len(ids) != tt.messages {
				t.Errorf("%d distinct webhook-ids over %d messages: retries must keep the id", len(ids), tt.messages)
			}
		})
	}
}

// A receiver that hangs neither blocks Send nor holds up other receivers.
func TestHangingReceiver(t *testing.T) {
	hung := newReceiver(t, nil, true)
	healthy := newReceiver(t, nil, false)
	n := newNotifier(t, []notify.Endpoint{{URL: hung.srv.URL}, {URL: healthy.srv.URL}},
		notify.Options{QueueSize: 3, Attempts: 1, Timeout: time.Minute, DrainTimeout: 50 * time.Millisecond})

	// Fill the hung endpoint's queue: one in flight, three waiting.
	for i := range 4 {
		n.Send(notify.Message{Type: "request.created", Text: fmt.Sprint(i)})
		if i == 0 {
			testkit.WaitFor(t, waitLimit, "the first request to reach the hung receiver", func() bool { return len(hung.deliveries()) == 1 })
		}
	}
	testkit.WaitFor(t, waitLimit, "the healthy receiver to get all four", func() bool { return len(healthy.deliveries()) == 4 })

	// Further messages are dropped for the hung endpoint at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			n.Send(notify.Message{Type: "request.created", Text: fmt.Sprint("more ", i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Send blocked on a full queue")
	}
	if st := n.Stats(); st.Dropped < 50 {
		t.Errorf("dropped %d, want at least the 50 the hung endpoint had no room for", st.Dropped)
	}

	// Close gives up on the hung receiver after DrainTimeout.
	closeWithin(t, n)
	st := n.Stats()
	if len(hung.deliveries()) != 1 {
		t.Errorf("hung receiver got %d requests, want 1", len(hung.deliveries()))
	}
	if st.Failed != 4 {
		t.Errorf("failed %d, want the 4 queued for the hung receiver", st.Failed)
	}
	if st.Delivered+st.Failed+st.Dropped != 2*54 {
		t.Errorf("delivered %d + failed %d + dropped %d, want every one of 2×54 accounted for", st.Delivered, st.Failed, st.Dropped)
	}
}

func TestCloseDrains(t *testing.T) {
	a, b := newReceiver(t, nil, false), newReceiver(t, func(n int) int {
		if n%2 == 1 {
			return http.StatusInternalServerError // every message needs a retry
		}
		return http.StatusOK
	}, false)
	n := newNotifier(t, []notify.Endpoint{{URL: a.srv.URL}, {URL: b.srv.URL}}, notify.Options{QueueSize: 100})
	const messages = 30
	for i := range messages {
		n.Send(notify.Message{Type: "request.created", Text: fmt.Sprint(i)})
	}
	closeWithin(t, n)
	if st := n.Stats(); st.Delivered != 2*messages || st.Failed != 0 || st.Dropped != 0 || st.Retries != messages {
		t.Errorf("stats after Close %+v, want %d delivered and %d retries", st, 2*messages, messages)
	}
	if len(a.deliveries()) != messages || len(b.deliveries()) != 2*messages {
		t.Errorf("receivers got %d and %d requests", len(a.deliveries()), len(b.deliveries()))
	}
	n.Close() // a second Close is harmless
}

func TestSendAfterClose(t *testing.T) {
	rcv := newReceiver(t, nil, false)
	n := newNotifier(t, []notify.Endpoint{{URL: rcv.srv.URL}, {URL: rcv.srv.URL + "/2"}}, notify.Options{})
	closeWithin(t, n)
	n.Send(notify.Message{Type: "request.expired"})
	if st := n.Stats(); st.Dropped != 2 {
		t.Errorf("dropped %d after Close, want 2 (one per endpoint)", st.Dropped)
	}
	if len(rcv.deliveries()) != 0 {
		t.Error("a message sent after Close was delivered")
	}
}

func TestNoEndpoints(t *testing.T) {
	n := newNotifier(t, nil, notify.Options{})
	n.Send(notify.Message{Type: "request.created"})
	closeWithin(t, n)
	if st := n.Stats(); st != (notify.Stats{}) {
		t.Errorf("stats %+v with no endpoints", st)
	}
}

func TestSendDefaults(t *testing.T) {
	rcv := newReceiver(t, nil, false)
	n := newNotifier(t, []notify.Endpoint{{URL: rcv.srv.URL}}, notify.Options{})
	n.Send(notify.Message{Type: "request.created", Text: "hello"})
	closeWithin(t, n)
	got := rcv.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(got[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if string(body["timestamp"]) != `"`+t0.Format(time.RFC3339)+`"` || string(body["data"]) != "{}" {
		t.Errorf("timestamp %s data %s, want the clock's time and {}", body["timestamp"], body["data"])
	}
}

// Close leaves no goroutine behind: not the workers, not the HTTP client's.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	n, err := notify.New([]notify.Endpoint{{URL: rcv.URL}, {URL: rcv.URL + "/other"}}, notify.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		n.Send(notify.Message{Type: "request.created"})
	}
	n.Close()
	rcv.Close()
	if st := n.Stats(); st.Delivered != 10 {
		t.Errorf("delivered %d, want 10", st.Delivered)
	}
	goleak.VerifyNone(t, ignore)
}

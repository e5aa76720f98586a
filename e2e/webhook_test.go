package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/notify"
)

const webhookPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  bob: {groups: [approvers], keys: [{{index .Key "bob"}}]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: prod-root
    groups: [dev]
    hosts: {names: [db1]}
    logins: [root]
    justification: {min_length: 10}
    approval: {approvers: [approvers], count: 1}
`

// delivery is one webhook POST as the receiver saw it.
type delivery struct {
	header http.Header
	body   []byte
}

// TestWebhooks checks that jitd serve --webhook delivers Standard Webhooks
// messages, signed with --webhook-secret, for a created and an approved
// request, with a Slack-compatible text field.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	secret := notify.SecretPrefix + base64.StdEncoding.EncodeToString(key)
	got := make(chan delivery, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.URL.Path != "/hook" {
			http.Error(w, "bad delivery", http.StatusBadRequest)
			return
		}
		select {
		case got <- delivery{header: r.Header.Clone(), body: body}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	alice, bob := newEngineer(t, "alice"), newEngineer(t, "bob")
	d := startDaemon(t, renderPolicy(t, webhookPolicy, "root", []*engineer{alice, bob}, nil),
		"--webhook", receiver.URL+"/hook", "--webhook-secret", secret)
	d.login(t, alice)
	d.login(t, bob)

	id := strings.TrimSpace(mustRun(t, alice, "request", "db1", "--login", "root", "--reason", "CHG-11 reboot the primary", "--no-wait"))
	created := nextMessage(t, got, secret, "request.created")
	checkMessage(t, created, map[string]any{"request_id": id, "user": "alice", "host": "db1", "login": "root", "state": "pending"})
	if !strings.Contains(created.Text, "alice") || !strings.Contains(created.Text, "CHG-11") {
		t.Errorf("created text %q does not name alice and the reason", created.Text)
	}

	mustRun(t, bob, "approve", id, "--reason", "go ahead")
	approved := nextMessage(t, got, secret, "request.approved")
	checkMessage(t, approved, map[string]any{"request_id": id, "user": "alice", "actor": "bob", "state": "approved"})
	if !strings.Contains(approved.Text, "bob") {
		t.Errorf("approved text %q does not name the approver", approved.Text)
	}
}

// webhookMessage is the delivered body.
type webhookMessage struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Text      string         `json:"text"`
	Data      map[string]any `json:"data"`
}

// nextMessage waits (bounded) for the next delivery of type typ and returns
// it. Every delivery on the way must verify with notify.Verify under secret
// and under no other; deliveries of other types are skipped.
func nextMessage(t *testing.T, got <-chan delivery, secret, typ string) webhookMessage {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case d := <-got:
			if err := notify.Verify(secret, d.header, d.body, time.Now(), 5*time.Minute); err != nil {
				t.Fatalf("webhook signature does not verify: %v\nheaders %v\nbody %s", err, d.header, d.body)
			}
			if wrong := notify.Verify(notify.SecretPrefix+base64.StdEncoding.EncodeToString(make([]byte, 32)), d.header, d.body, time.Now(), 5*time.Minute); wrong == nil {
				t.Fatal("webhook signature verifies with another secret too")
			}
			if d.header.Get("webhook-id") == "" || !strings.HasPrefix(d.header.Get("content-type"), "application/json") {
				t.Errorf("webhook headers %v lack webhook-id or a JSON content type", d.header)
			}
			var m webhookMessage
			if err := json.Unmarshal(d.body, &m); err != nil {
				t.Fatalf("webhook body is not JSON: %v\n%s", err, d.body)
			}
			if m.Type == typ {
				return m
			}
		case <-timeout:
			t.Fatalf("no %s webhook within 15s", typ)
		}
	}
}

func checkMessage(t *testing.T, m webhookMessage, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if m.Data[k] != v {
			t.Errorf("%s webhook data[%q] = %v, want %v (data %v)", m.Type, k, m.Data[k], v, m.Data)
		}
	}
	if m.Timestamp.IsZero() || m.Text == "" {
		t.Errorf("%s webhook lacks timestamp or text: %+v", m.Type, m)
	}
}

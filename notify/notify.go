// Package notify delivers events to webhooks, signed as the Standard Webhooks
// specification describes (webhook-id, webhook-timestamp and
// webhook-signature "v1,<base64 HMAC-SHA256(id.timestamp.body)>"), with a
// body that a Slack incoming webhook also accepts.
//
// Delivery is asynchronous with bounded retries and backoff: Send never
// blocks, and a failing receiver is logged and counted, never waited for.
// Each endpoint has its own queue and worker, so a receiver that fails or
// hangs delays and drops only its own deliveries.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SecretPrefix starts every webhook secret, as in the Standard Webhooks spec.
const SecretPrefix = "whsec_"

// Endpoint is one webhook receiver.
type Endpoint struct {
	URL string
	// Secret is "whsec_" followed by the base64 key; empty sends unsigned
	// (for a Slack incoming webhook, whose URL is the secret).
	Secret string
}

// Message is what is delivered: Standard Webhooks' type/timestamp/data
// fields plus Slack's text.
type Message struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Text      string    `json:"text"`
	Data      any       `json:"data"`
}

// Options tune delivery. Zero values mean the defaults in brackets.
type Options struct {
	Attempts     int           // tries per message and endpoint [5]
	Backoff      time.Duration // first retry delay, doubling [1s]
	Timeout      time.Duration // per attempt [10s]
	QueueSize    int           // messages waiting per endpoint; more are dropped and counted [1000]
	DrainTimeout time.Duration // how long Close waits for queued deliveries [5s]
	Logger       *slog.Logger
	// HTTPClient sends the requests; nil means a client of the Notifier's
	// own that does not follow redirects (a redirect is a failed attempt).
	HTTPClient *http.Client
	Clock      func() time.Time
}

// Stats counts deliveries since start, one per message and endpoint.
type Stats struct {
	Delivered, Failed, Dropped, Retries int64
}

// Notifier sends messages to every endpoint in the background.
type Notifier struct {
	endpoints []*endpoint
	opts      Options
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once

	mu     sync.RWMutex // guards closed and sends on the endpoint queues
	closed bool

	delivered, failed, dropped, retries atomic.Int64
}

type endpoint struct {
	url   string
	key   []byte
	queue chan Message
}

// New validates the endpoints and starts the delivery worker.
func New(endpoints []Endpoint, opts Options) (*Notifier, error) {
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	n := &Notifier{opts: opts}
	for i, e := range endpoints {
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("webhook %d: url %q must be an http(s) URL", i+1, e.URL)
		}
		ep := &endpoint{url: e.URL, queue: make(chan Message, opts.QueueSize)}
		if e.Secret != "" {
			raw, ok := strings.CutPrefix(e.Secret, SecretPrefix)
			if !ok {
				return nil, fmt.Errorf("webhook %d: secret must start with %q", i+1, SecretPrefix)
			}
			key, err := base64.StdEncoding.DecodeString(raw)
			if err != nil || len(key) < 16 {
				return nil, fmt.Errorf("webhook %d: secret must be %s followed by at least 16 bytes of base64", i+1, SecretPrefix)
			}
			ep.key = key
		}
		n.endpoints = append(n.endpoints, ep)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, ep := range n.endpoints {
		n.wg.Add(1)
		go n.run(ep)
	}
	return n, nil
}

// Send queues a message for every endpoint. It never blocks: when an
// endpoint's queue is full, or the Notifier is closed, the message is
// dropped for it, logged and counted. A zero Timestamp is set to now and nil
// Data is sent as an empty object.
func (n *Notifier) Send(m Message) {
	if len(n.endpoints) == 0 {
		return
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = n.opts.Clock()
	}
	if m.Data == nil {
		m.Data = struct{}{}
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		n.dropped.Add(int64(len(n.endpoints)))
		n.opts.Logger.Error("webhook notifier closed; notification dropped", "type", m.Type)
		return
	}
	for _, ep := range n.endpoints {
		select {
		case ep.queue <- m:
		default:
			n.dropped.Add(1)
			n.opts.Logger.Error("webhook queue full; notification dropped", "url", redact(ep.url), "type", m.Type)
		}
	}
}

// Stats returns delivery counters.
func (n *Notifier) Stats() Stats {
	return Stats{Delivered: n.delivered.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load(), Retries: n.retries.Load()}
}

// Close stops taking messages (later Sends are dropped and counted) and
// waits up to DrainTimeout for queued deliveries and their retries; what is
// still undelivered then is abandoned and counted as failed. When Close
// returns no delivery goroutine is left.
func (n *Notifier) Close() {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		for _, ep := range n.endpoints {
			close(ep.queue)
		}
		n.mu.Unlock()
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		timer := time.NewTimer(n.opts.DrainTimeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			n.cancel()
			<-done
		}
		n.cancel()
		n.opts.HTTPClient.CloseIdleConnections()
	})
}

func (n *Notifier) run(ep *endpoint) {
	defer n.wg.Done()
	for m := range ep.queue {
		n.deliver(ep, m)
	}
}

func (n *Notifier) deliver(ep *endpoint, m Message) {
	body, err := json.Marshal(m)
	if err != nil {
		n.failed.Add(1)
		n.opts.Logger.Error("webhook encode", "type", m.Type, "err", err)
		return
	}
	id, err := newID()
	if err != nil {
		n.failed.Add(1)
		return
	}
	delay := n.opts.Backoff
	for attempt := 1; ; attempt++ {
		err := n.post(ep, id, body)
		if err == nil {
			n.delivered.Add(1)
			return
		}
		if attempt >= n.opts.Attempts || n.ctx.Err() != nil {
			n.failed.Add(1)
			n.opts.Logger.Error("webhook delivery failed", "url", redact(ep.url), "type", m.Type, "attempts", attempt, "err", err)
			return
		}
		n.retries.Add(1)
		select {
		case <-time.After(delay):
		case <-n.ctx.Done():
		}
		delay *= 2
	}
}

func (n *Notifier) post(ep *endpoint, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := n.opts.Clock().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if ep.key != nil {
		req.Header.Set("webhook-signature", Sign(ep.key, id, ts, body))
	}
	resp, err := n.opts.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// Sign returns the webhook-signature header value for a delivery.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery as a receiver would: one of the space-separated
// signatures must match, and the timestamp must be within tolerance of now.
func Verify(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	raw, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return fmt.Errorf("secret must start with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	id, tsText := header.Get("webhook-id"), header.Get("webhook-timestamp")
	if id == "" {
		return errors.New("webhook-id is missing")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not a number", tsText)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp %d is outside the %s tolerance", ts, tolerance)
	}
	want := Sign(key, id, ts, body)
	for _, sig := range strings.Fields(header.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no webhook-signature matches")
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw webhook id: %w", err)
	}
	return "msg_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// redact keeps webhook URLs (which may carry secrets, as Slack's do) out of
// logs beyond their host.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "webhook"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

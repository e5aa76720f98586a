package daemon

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/notify"
)

// WebhookConfig is one webhook receiver of lifecycle notifications.
type WebhookConfig struct {
	URL    string
	Secret string // whsec_...; empty for an unsigned (Slack) receiver
}

// webhookNotifier turns lifecycle notifications into webhook messages.
type webhookNotifier struct {
	n *notify.Notifier
}

func newWebhookNotifier(hooks []WebhookConfig, log *slog.Logger, clock func() time.Time) (*webhookNotifier, error) {
	eps := make([]notify.Endpoint, 0, len(hooks))
	for _, h := range hooks {
		eps = append(eps, notify.Endpoint{URL: h.URL, Secret: h.Secret})
	}
	n, err := notify.New(eps, notify.Options{Logger: log.With("component", "webhook"), Clock: clock})
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	return &webhookNotifier{n: n}, nil
}

// webhookData is the structured part of a notification, with stable names.
type webhookData struct {
	RequestID  string `json:"request_id"`
	User       string `json:"user"`
	Host       string `json:"host"`
	Login      string `json:"login"`
	Role       string `json:"role"`
	State      string `json:"state"`
	Reason     string `json:"reason,omitempty"`
	Actor      string `json:"actor,omitempty"`
	Approvals  int    `json:"approvals,omitempty"`
	Needed     int    `json:"approvals_needed,omitempty"`
	BreakGlass bool   `json:"break_glass,omitempty"`
}

// Notify implements grant.Notifier.
func (w *webhookNotifier) Notify(n grant.Notification) {
	r := n.Request
	text := fmt.Sprintf("%s: %s asks for %s@%s (%s): %q", n.Event, r.User, r.Login, r.Host, r.ID, r.Justification)
	switch n.Event {
	case "request.approved":
		text = fmt.Sprintf("approved: %s@%s for %s by %s (%s)", r.Login, r.Host, r.User, n.Actor, r.ID)
	case "request.denied":
		text = fmt.Sprintf("denied: %s@%s for %s by %s: %q (%s)", r.Login, r.Host, r.User, n.Actor, n.Reason, r.ID)
	case "request.expired":
		text = fmt.Sprintf("expired: %s@%s for %s (%s)", r.Login, r.Host, r.User, r.ID)
	case "request.cancelled":
		text = fmt.Sprintf("cancelled: %s@%s by %s (%s)", r.Login, r.Host, r.User, r.ID)
	case "request.break_glass":
		text = fmt.Sprintf(":rotating_light: BREAK-GLASS: %s took %s@%s without approval: %q (%s)", r.User, r.Login, r.Host, r.Justification, r.ID)
	}
	w.n.Send(notify.Message{
		Type: n.Event, Timestamp: n.Time, Text: text,
		Data: webhookData{
			RequestID: r.ID, User: r.User, Host: r.Host, Login: r.Login, Role: r.Role, State: r.State,
			Reason: n.Reason, Actor: n.Actor, Approvals: n.Approvals, Needed: r.ApprovalsNeeded, BreakGlass: n.BreakGlass || r.BreakGlass,
		},
	})
}

// Close drains pending deliveries.
func (w *webhookNotifier) Close() { w.n.Close() }

package grant

import (
	"encoding/base64"
	"fmt"
	"io"
	"sync"
	"time"
)

// nonces are the single-use challenges a caller signs to prove a key: a
// login's (bound to the user) and a host renewal's (bound to the host
// name). Each is valid for ttl and spent at its first use, whatever the
// outcome; at most maxChallenges wait unanswered, so a flood of challenge
// requests cannot grow memory. Safe for concurrent use.
type nonces struct {
	ttl time.Duration
	// what names the operation for the busy refusal ("logins").
	what string

	mu sync.Mutex
	m  map[string]challenge // by nonce
}

type challenge struct {
	subject string
	expires time.Time
}

func newNonces(ttl time.Duration, what string) *nonces {
	return &nonces{ttl: ttl, what: what, m: map[string]challenge{}}
}

// issue draws a nonce for subject, valid from now for n.ttl. Too many
// unanswered nonces is KindUnavailable with CodeBusy.
func (n *nonces) issue(rand io.Reader, subject string, now time.Time) (string, time.Time, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", time.Time{}, fmt.Errorf("draw nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(b)
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, c := range n.m {
		if now.After(c.expires) {
			delete(n.m, k)
		}
	}
	if len(n.m) >= maxChallenges {
		return "", time.Time{}, newError(KindUnavailable, CodeBusy, "too many %s in progress; retry shortly", n.what)
	}
	n.m[nonce] = challenge{subject: subject, expires: now.Add(n.ttl)}
	return nonce, now.Add(n.ttl), nil
}

// spend removes nonce and reports whether it was issued for subject and is
// still valid at now.
func (n *nonces) spend(nonce, subject string, now time.Time) bool {
	n.mu.Lock()
	c, ok := n.m[nonce]
	delete(n.m, nonce)
	n.mu.Unlock()
	return ok && !now.After(c.expires) && c.subject == subject
}

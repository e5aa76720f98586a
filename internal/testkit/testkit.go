// Package testkit holds the helpers that tests of several packages need
// alike: a settable clock, fresh SSH keys (signers, OpenSSH PEM, RSA and
// ECDSA public keys), polling for a condition, edits of fixture text, a bad
// policy file, and the process's CPU time for benchmarks. It is imported
// only from _test.go files and imports no jitssh package, so that any
// package's tests may use it.
package testkit

import (
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Clock is a settable clock, safe for concurrent use. Its Now method has the
// func() time.Time shape that jitssh's packages take as their clock. The zero
// value reads the zero time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock that reads t until it is set or advanced.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set makes the clock read t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Advance moves the clock forward by d (backward if d is negative) and
// returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// Signer returns a fresh ed25519 ssh.Signer; it fails t if the system's
// random source does.
func Signer(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate ed25519 key: %v", err)
	}
	return signerOf(t, priv)
}

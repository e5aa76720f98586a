package testkit

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		step func(c *Clock)
		want time.Time
	}{
		{name: "reads the start", step: func(*Clock) {}, want: start},
		{name: "set", step: func(c *Clock) { c.Set(start.Add(time.Hour)) }, want: start.Add(time.Hour)},
		{name: "advance", step: func(c *Clock) { c.Advance(90 * time.Second) }, want: start.Add(90 * time.Second)},
		{name: "advance backwards", step: func(c *Clock) { c.Advance(-time.Minute) }, want: start.Add(-time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClock(start)
			tt.step(c)
			if got := c.Now(); !got.Equal(tt.want) {
				t.Fatalf("Now() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestClockConcurrent is meant for -race: readers and writers at once.
func TestClockConcurrent(t *testing.T) {
	c := NewClock(time.Unix(0, 0))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() { defer wg.Done(); c.Advance(time.Second) }()
		go func() { defer wg.Done(); _ = c.Now() }()
	}
	wg.Wait()
	if got := c.Now(); !got.Equal(time.Unix(4, 0)) {
		t.Fatalf("after 4 advances of 1s: %v", got)
	}
}

func TestSignerIsFresh(t *testing.T) {
	a, b := Signer(t), Signer(t)
	if a.PublicKey().Type() != "ssh-ed25519" {
		t.Fatalf("type %q", a.PublicKey().Type())
	}
	if bytes.Equal(a.PublicKey().Marshal(), b.PublicKey().Marshal()) {
		t.Fatal("two calls returned the same key")
	}
	sig, err := a.Sign(nil, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PublicKey().Verify([]byte("data"), sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}

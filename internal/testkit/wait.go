package testkit

import (
	"testing"
	"time"
)

// firstPoll and lastPoll bound WaitFor's polling interval: quick at first,
// so that an in-process condition is seen at once, then backing off, so
// that a condition that runs a command does not load a busy machine.
const (
	firstPoll = time.Millisecond
	lastPoll  = 100 * time.Millisecond
)

// WaitFor polls cond until it returns true and fails t, naming what, if
// timeout passes first. cond runs on the calling goroutine.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := firstPoll; !cond(); pause = min(2*pause, lastPoll) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}

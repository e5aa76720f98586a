package daemon

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: Close, and a
// New that fails part-way, must stop everything the daemon started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

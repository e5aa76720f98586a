package testkit

import (
	"syscall"
	"testing"
	"time"
)

// ProcessCPU is the user plus system CPU time this process has used so far.
// Benchmarks report CPU per operation from it because, unlike a rate, it
// hardly depends on what else the machine runs.
func ProcessCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

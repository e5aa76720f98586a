//go:build !linux

package audit

import (
	"syscall"
	"time"
)

// userTimeoutControl is nil off Linux, which has no TCP_USER_TIMEOUT in
// this form: keepalives and the server's own settings still apply.
func userTimeoutControl(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}

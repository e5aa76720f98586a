package bastion

import (
	"fmt"
	"io"
	"time"
)

// EndReasonIdle is the end reason of a session cut by its role's idle
// timeout.
const EndReasonIdle = "idle"

// idleWarning is how long before an idle cut the engineer is warned, as
// before the expiry cut; for idle timeouts of two minutes or less, half
// the timeout.
const idleWarning = time.Minute

// idleState is the connection's input clock for its role's idle timeout.
// Idle time is elapsed time (time.Now), not the Clock that decides
// certificate validity.
type idleState struct {
	timeout   time.Duration
	lastInput time.Time
	warnedFor time.Time // the lastInput the warning was written for
}

// watchIdle cuts the connection's sessions once no input has come from the
// engineer for timeout (zero: never), with a warning on every session
// idleWarning before. Input is session channel data from the client and
// the opening of a channel.
func (st *connState) watchIdle(timeout time.Duration) {
	if timeout <= 0 {
		return
	}
	warn := min(idleWarning, timeout/2)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed || st.idle != nil {
		return
	}
	st.idle = &idleState{timeout: timeout, lastInput: time.Now()}
	st.idleT = time.AfterFunc(timeout-warn, func() { st.idleCheck(warn) })
}

// touch records input from the engineer.
func (st *connState) touch() {
	st.mu.Lock()
	if st.idle != nil {
		st.idle.lastInput = time.Now()
	}
	st.mu.Unlock()
}

// idleCheck runs on the idle timer: it warns, cuts, or sleeps until the
// next moment either could be due.
func (st *connState) idleCheck(warn time.Duration) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	is := st.idle
	idle := time.Since(is.lastInput)
	var next time.Duration
	warnNow := false
	switch {
	case idle >= is.timeout:
		st.mu.Unlock()
		st.srv.log.Info("session idle; ending its connection", "remote", st.remote, "idle_timeout", is.timeout)
		st.terminateWith(EndReasonIdle, fmt.Sprintf("jitssh: no input for %s; session closed (idle timeout)", is.timeout))
		return
	case idle >= is.timeout-warn:
		warnNow = !is.warnedFor.Equal(is.lastInput)
		is.warnedFor = is.lastInput
		next = is.timeout - idle
	default:
		next = is.timeout - warn - idle
	}
	st.idleT.Reset(max(next, 10*time.Millisecond))
	timeout := is.timeout
	st.mu.Unlock()
	if warnNow {
		for _, ss := range st.liveSessions() {
			ss.notice(fmt.Sprintf("jitssh: no input for %s; this session will be closed in %s (idle timeout %s) unless you type", timeout-warn, warn, timeout))
		}
	}
}

// terminateWith ends every session with reason, telling the client msg,
// and closes the connection.
func (st *connState) terminateWith(reason, msg string) {
	st.mu.Lock()
	if st.reason == "" {
		st.reason = reason
	}
	st.mu.Unlock()
	for _, ss := range st.liveSessions() {
		ss.end(reason, msg)
	}
	st.raw.Close()
}

// inputReader marks the connection active on each read from the client.
type inputReader struct {
	r  io.Reader
	st *connState
}

func (ir inputReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.st.touch()
	}
	return n, err
}

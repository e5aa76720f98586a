package bastion

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/sessionlog"
)

// Payloads of the session requests the bastion reads (RFC 4254 section 6).
type ptyRequestMsg struct {
	Term                      string
	Cols, Rows, Width, Height uint32
	Modes                     string
}

type windowChangeMsg struct {
	Cols, Rows, Width, Height uint32
}

type envMsg struct {
	Name, Value string
}

type stringMsg struct {
	Value string
}

type exitStatusMsg struct {
	Status uint32
}

type exitSignalMsg struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}

// session is one recorded session channel.
type session struct {
	srv *Server
	st  *connState
	id  identity

	client ssh.Channel
	reqs   <-chan *ssh.Request
	// clientMu orders our own stderr notices against CloseWrite, which
	// x/crypto does not synchronise with concurrent writes.
	clientMu sync.Mutex

	mu         sync.Mutex
	rec        SessionRecord
	target     ssh.Channel
	ended      bool
	exitStatus *uint32
	exitSignal *exitSignalMsg

	tape *recorder

	binary   bool // a file transfer: counted and scanned, not recorded
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
}

// setup is what the client asked for before shell, exec or subsystem.
type setup struct {
	pty         *ptyRequestMsg
	env         []envMsg
	agent, x11  bool
	x11Payload  []byte
	reqType     string // "shell", "exec" or "subsystem"
	payload     []byte
	command     string // exec command line or subsystem name
	startReq    *ssh.Request
	refusedNote []string
}

// allowedEnv reports whether env var name may be passed to the target.
func allowedEnv(name string) bool {
	return name == "TERM" || name == "LANG" || strings.HasPrefix(name, "LC_")
}

// handleSession is the gliderlabs ChannelHandler for "session" channels.
func (s *Server) handleSession(_ *gliderssh.Server, conn *ssh.ServerConn, newCh ssh.NewChannel, ctx gliderssh.Context) {
	st := stateOf(ctx)
	id, err := identityOf(conn.Permissions)
	if st == nil || err != nil {
		_ = newCh.Reject(ssh.Prohibited, "not authenticated")
		return
	}
	if !s.enter() {
		_ = newCh.Reject(ssh.ResourceShortage, "bastion shutting down")
		return
	}
	defer s.wg.Done()
	ch, reqs, err := newCh.Accept()
	if err != nil {
		return
	}
	st.touch() // opening a session is input for the idle timeout
	ss := newSession(s, st, id, ch, reqs)
	ss.run(ctx, conn)
	// Drain until the client acknowledges the close.
	for req := range reqs {
		_ = req.Reply(false, nil)
	}
}

// newSession is the session on channel ch of the connection st, by id.
func newSession(s *Server, st *connState, id identity, ch ssh.Channel, reqs <-chan *ssh.Request) *session {
	ss := &session{srv: s, st: st, id: id, client: ch, reqs: reqs}
	ss.tape = &recorder{
		log: s.log, clock: s.cfg.Clock, failOpen: s.cfg.RecordingFailOpen, pool: s.encoders,
		end: func(err error) {
			ss.end("recording failed: "+err.Error(), "recording unavailable: "+err.Error())
		},
	}
	return ss
}

// enter counts a handler Close must wait for; false once closed.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// readSetup consumes requests until shell, exec or subsystem. It returns
// nil if the channel closed first.
func (ss *session) readSetup(reqs <-chan *ssh.Request) *setup {
	su := &setup{}
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			var m ptyRequestMsg
			if err := ssh.Unmarshal(req.Payload, &m); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			if !ss.id.permits(permitPTY) {
				su.refusedNote = append(su.refusedNote, "pty refused: certificate lacks permit-pty")
				_ = req.Reply(false, nil)
				continue
			}
			su.pty = &m
			_ = req.Reply(true, nil)
		case "env":
			var m envMsg
			if err := ssh.Unmarshal(req.Payload, &m); err != nil || !allowedEnv(m.Name) {
				_ = req.Reply(false, nil)
				continue
			}
			su.env = append(su.env, m)
			_ = req.Reply(true, nil)
		case "window-change":
			var m windowChangeMsg
			if su.pty != nil && ssh.Unmarshal(req.Payload, &m) == nil {
				su.pty.Cols, su.pty.Rows, su.pty.Width, su.pty.Height = m.Cols, m.Rows, m.Width, m.Height
			}
			_ = req.Reply(false, nil)
		case "auth-agent-req@openssh.com":
			ok := ss.id.permits(permitAgent)
			su.agent = su.agent || ok
			ss.forwardDecision("agent forwarding", ok)
			su.refusedNote = appendIf(su.refusedNote, !ok, "agent forwarding refused")
			_ = req.Reply(ok, nil)
		case "x11-req":
			ok := ss.id.permits(permitX11)
			if ok {
				su.x11, su.x11Payload = true, req.Payload
			}
			ss.forwardDecision("X11 forwarding", ok)
			su.refusedNote = appendIf(su.refusedNote, !ok, "X11 forwarding refused")
			_ = req.Reply(ok, nil)
		case "shell", "exec", "subsystem":
			su.reqType, su.payload, su.startReq = req.Type, req.Payload, req
			if req.Type != "shell" {
				var m stringMsg
				if err := ssh.Unmarshal(req.Payload, &m); err != nil {
					_ = req.Reply(false, nil)
					continue
				}
				su.command = m.Value
			}
			return su
		default:
			_ = req.Reply(false, nil)
		}
	}
	return nil
}

func appendIf(list []string, cond bool, s string) []string {
	if cond {
		return append(list, s)
	}
	return list
}

// forwardDecision audits refused forwarding.
func (ss *session) forwardDecision(what string, allowed bool) {
	if !allowed {
		ss.srv.reject(ss.id.User, ss.id.Host, ss.st.remote, fmt.Sprintf("%s refused: certificate lacks permission", what))
	}
}

// refuse tells the client why its session cannot start and closes it. The
// start request is answered true so that OpenSSH prints our message and
// exits with status 255, rather than racing its own "request failed".
func (ss *session) refuse(req *ssh.Request, msg string) {
	if req != nil {
		_ = req.Reply(true, nil)
	}
	ss.tell(msg + "\r\n")
	_, _ = ss.client.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{Status: 255}))
	ss.clientMu.Lock()
	_ = ss.client.CloseWrite()
	ss.clientMu.Unlock()
	_ = ss.client.Close()
}

// run drives one session channel from setup to SessionEnded.
func (ss *session) run(ctx context.Context, conn *ssh.ServerConn) {
	s := ss.srv
	su := ss.readSetup(ss.reqs)
	if su == nil {
		_ = ss.client.Close()
		return
	}
	command, display := su.command, su.reqType
	if su.reqType != "shell" {
		display = su.reqType + " " + su.command
	}
	if ss.id.ForceCommand != "" {
		command, display = ss.id.ForceCommand, "exec "+ss.id.ForceCommand+" (force-command; requested: "+display+")"
	}
	ss.binary = su.reqType == "subsystem" && ss.id.ForceCommand == "" || isSCP(command)

	sid, err := ss.st.nextSessionID()
	if err != nil {
		ss.refuse(su.startReq, "jitssh: "+err.Error())
		return
	}
	target, targetSN, err := ss.st.targetClient(ctx, conn, ss.id, sid)
	if err != nil {
		s.log.Warn("target unavailable", "session", sid, "host", ss.id.Host, "err", err)
		ss.refuse(su.startReq, "jitssh: target unavailable: "+err.Error())
		return
	}
	now := s.cfg.Clock()
	ss.rec = SessionRecord{
		ID: sid, RequestID: ss.id.RequestID, User: ss.id.User, Host: ss.id.Host, Login: ss.id.Login,
		Serial: ss.id.Serial, TargetSerial: targetSN, ClientAddr: ss.st.remote, Command: display,
		StartedAt: now, ExitStatus: -1,
	}
	if err := ss.openRecording(su); err != nil {
		s.reject(ss.id.User, ss.id.Host, ss.st.remote, "recording unavailable: "+err.Error())
		if !s.cfg.RecordingFailOpen {
			ss.refuse(su.startReq, "recording unavailable: "+err.Error())
			return
		}
		s.log.Warn("recording unavailable; continuing (RecordingFailOpen)", "session", sid, "err", err)
	}
	bctx, cancel := backendCtx(ctx)
	err = s.cfg.Backend.SessionStarted(bctx, ss.snapshot())
	cancel()
	if err != nil {
		s.log.Error("audit session start", "session", sid, "err", err)
		s.reject(ss.id.User, ss.id.Host, ss.st.remote, "session start not recorded: "+err.Error())
		ss.discardRecording()
		ss.refuse(su.startReq, "jitssh: session refused: audit unavailable")
		return
	}
	if !ss.register() {
		ss.finish("bastion shutting down")
		ss.refuse(su.startReq, "jitssh: bastion shutting down")
		return
	}
	for _, n := range su.refusedNote {
		ss.marker(n)
	}
	ss.marker(display)
	ss.proxy(target, su, command)
	ss.unregister()
}

// register adds the session to the live lists; false if the connection is
// already going away.
func (ss *session) register() bool {
	ss.st.mu.Lock()
	closed := ss.st.closed || ss.st.reason != ""
	if !closed {
		ss.st.sessions[ss] = struct{}{}
	}
	ss.st.mu.Unlock()
	if closed {
		return false
	}
	ss.srv.mu.Lock()
	ss.srv.sessions[ss] = struct{}{}
	ss.srv.mu.Unlock()
	return true
}

func (ss *session) unregister() {
	ss.st.mu.Lock()
	delete(ss.st.sessions, ss)
	ss.st.mu.Unlock()
	ss.srv.mu.Lock()
	delete(ss.srv.sessions, ss)
	ss.srv.mu.Unlock()
}

// snapshot returns the session record with current byte counts.
func (ss *session) snapshot() SessionRecord {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	r := ss.rec
	r.BytesIn, r.BytesOut = ss.bytesIn.Load(), ss.bytesOut.Load()
	return r
}

// proxy opens the target session channel, replays the setup, starts the
// command and copies data and requests until both sides are done.
func (ss *session) proxy(target *ssh.Client, su *setup, command string) {
	defer ss.finish("")
	tch, treqs, err := target.OpenChannel("session", nil)
	if err != nil {
		_ = su.startReq.Reply(false, nil)
		ss.end("target refused session: "+err.Error(), "jitssh: target refused session: "+err.Error())
		return
	}
	ss.mu.Lock()
	ss.target = tch
	ended := ss.ended
	ss.mu.Unlock()
	if ended {
		_ = tch.Close()
	}
	ss.replaySetup(tch, su)
	if !ss.start(tch, su, command) {
		// Drain so the target channel's close completes.
		for range treqs {
		}
		return
	}
	ss.pump(tch, treqs, su, command)
}

// replaySetup sends the target what the client asked for before starting.
func (ss *session) replaySetup(tch ssh.Channel, su *setup) {
	if su.pty != nil {
		if ok, err := tch.SendRequest("pty-req", true, ssh.Marshal(su.pty)); err != nil || !ok {
			ss.marker("target refused pty")
		}
	}
	for _, e := range su.env {
		_, _ = tch.SendRequest("env", false, ssh.Marshal(e))
	}
	if su.agent {
		ok, _ := tch.SendRequest("auth-agent-req@openssh.com", true, nil)
		ss.marker(fmt.Sprintf("agent forwarding requested (target answered %t)", ok))
	}
	if su.x11 {
		ok, _ := tch.SendRequest("x11-req", true, su.x11Payload)
		ss.marker(fmt.Sprintf("X11 forwarding requested (target answered %t)", ok))
	}
}

// start sends the shell, exec or subsystem request (exec of command under
// force-command) and answers the client's start request with the target's
// verdict; false ends the session.
func (ss *session) start(tch ssh.Channel, su *setup, command string) bool {
	reqType, payload := su.reqType, su.payload
	if ss.id.ForceCommand != "" {
		reqType, payload = "exec", ssh.Marshal(stringMsg{Value: command})
	}
	ok, err := tch.SendRequest(reqType, true, payload)
	if err != nil || !ok {
		_ = su.startReq.Reply(false, nil)
		ss.marker(reqType + " refused by target")
		ss.end("target refused "+reqType, "")
		return false
	}
	_ = su.startReq.Reply(true, nil)
	return true
}

// pump copies data both ways and forwards requests until the target closes
// its channel, then relays the exit status and closes the client's.
func (ss *session) pump(tch ssh.Channel, treqs <-chan *ssh.Request, su *setup, command string) {
	in, out, endScan := ss.scanners(su, command)
	inDone := make(chan struct{})
	go func() { // client -> target
		defer close(inDone)
		ss.copy(tch, ss.client, in, sessionlog.CodeInput)
		_ = tch.CloseWrite()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // target stdout -> client
		defer wg.Done()
		ss.copy(ss.client, tch, out, sessionlog.CodeOutput)
	}()
	go func() { // target stderr -> client stderr
		defer wg.Done()
		ss.copy(ss.client.Stderr(), tch.Stderr(), nil, sessionlog.CodeOutput)
	}()
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		ss.clientRequests(tch)
	}()
	for req := range treqs {
		ss.targetRequest(req)
	}
	wg.Wait() // the copies from tch end when the target channel closed
	ss.relayExit()
	<-inDone
	<-clientDone
	if endScan != nil {
		for _, m := range endScan() {
			ss.marker(m)
		}
	}
}

// relayExit sends the client the target's exit status or signal and closes
// the client's channel.
func (ss *session) relayExit() {
	ss.mu.Lock()
	status, sig := ss.exitStatus, ss.exitSignal
	ss.mu.Unlock()
	if status != nil {
		_, _ = ss.client.SendRequest("exit-status", false, ssh.Marshal(exitStatusMsg{Status: *status}))
	}
	if sig != nil {
		_, _ = ss.client.SendRequest("exit-signal", false, ssh.Marshal(sig))
	}
	ss.clientMu.Lock()
	_ = ss.client.CloseWrite()
	ss.clientMu.Unlock()
	_ = ss.client.Close()
}

// clientRequests forwards the client's in-session requests until the client
// closes its channel, then closes the target channel.
func (ss *session) clientRequests(tch ssh.Channel) {
	for req := range ss.reqs {
		switch req.Type {
		case "window-change":
			var m windowChangeMsg
			if ssh.Unmarshal(req.Payload, &m) == nil {
				ss.tape.resize(int(m.Cols), int(m.Rows))
				_, _ = tch.SendRequest(req.Type, false, req.Payload)
			}
			_ = req.Reply(false, nil)
		case "signal", "break", "eow@openssh.com":
			if req.Type == "signal" {
				var m stringMsg
				if ssh.Unmarshal(req.Payload, &m) == nil {
					ss.marker("signal " + m.Value)
				}
			}
			ok, err := tch.SendRequest(req.Type, req.WantReply, req.Payload)
			_ = req.Reply(ok && err == nil, nil)
		default:
			_ = req.Reply(false, nil)
		}
	}
	_ = tch.Close()
}

// targetRequest handles one request the target sent on the session channel.
func (ss *session) targetRequest(req *ssh.Request) {
	switch req.Type {
	case "exit-status":
		var m exitStatusMsg
		if ssh.Unmarshal(req.Payload, &m) == nil {
			ss.mu.Lock()
			ss.exitStatus = &m.Status
			ss.rec.ExitStatus = int(m.Status)
			ss.mu.Unlock()
			ss.marker(fmt.Sprintf("exit-status %d", m.Status))
		}
		_ = req.Reply(true, nil)
	case "exit-signal":
		var m exitSignalMsg
		if ssh.Unmarshal(req.Payload, &m) == nil {
			ss.mu.Lock()
			ss.exitSignal = &m
			ss.mu.Unlock()
			ss.marker("exit-signal " + m.Signal)
		}
		_ = req.Reply(true, nil)
	case "eow@openssh.com":
		_, _ = ss.client.SendRequest(req.Type, false, req.Payload)
		_ = req.Reply(false, nil)
	default:
		_ = req.Reply(false, nil)
	}
}

// copy forwards src to dst through a recordingWriter until either side
// ends or the recording fails: data of code sessionlog.CodeOutput, or of
// sessionlog.CodeInput when the grant records input, is recorded unless the
// stream is a file transfer. Recording only queues the bytes (the Writer
// encodes them on its own goroutine), so forwarding runs in parallel with it.
func (ss *session) copy(dst io.Writer, src io.Reader, sc scanner, code string) {
	count := &ss.bytesOut
	if code == sessionlog.CodeInput {
		count = &ss.bytesIn
		src = inputReader{r: src, st: ss.st} // input keeps the idle timeout away
	}
	rw := &recordingWriter{
		dst: dst, rec: ss.tape, code: code, count: count, scan: sc,
		record: !ss.binary && (code == sessionlog.CodeOutput || ss.id.RecordInput),
	}
	_, _ = io.CopyBuffer(rw, src, make([]byte, copyBufferSize))
}

// copyBufferSize is the SSH channel's largest packet (x/crypto's 32 KiB),
// so a bulk stream moves a packet per read. Copy buffers live as long as
// their session, but an idle one costs little resident memory: a buffer
// this large gets fresh, already zeroed pages that stay untouched until
// data arrives. (Stderr buffers of 4 KiB, from a small-object span that is
// zeroed on allocation, measured 5 KiB more per idle session in the
// 500-session run.)
const copyBufferSize = 32 << 10

// notice writes a line to the client's terminal and marks it.
func (ss *session) notice(msg string) {
	ss.marker(msg)
	ss.tell("\r\n" + msg + "\r\n")
}

// tell writes msg to the client's stderr.
func (ss *session) tell(msg string) {
	ss.clientMu.Lock()
	defer ss.clientMu.Unlock()
	_, _ = ss.client.Stderr().Write([]byte(msg))
}

// end stops the session early: it records why, tells the client and closes
// both channels, which lets proxy finish normally.
func (ss *session) end(reason, clientMsg string) {
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return
	}
	ss.ended = true
	ss.rec.EndReason = reason
	tch := ss.target
	ss.mu.Unlock()
	if reason != "" {
		ss.marker("session ended: " + reason)
	}
	if clientMsg != "" {
		ss.tell("\r\n" + clientMsg + "\r\n")
	}
	if tch != nil {
		_ = tch.Close()
	}
	_ = ss.client.Close()
}

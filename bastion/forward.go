package bastion

import (
	"fmt"
	"io"
	"sync"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

// Forwarding is refused unless the engineer's certificate carries the
// matching permit-* extension. Allowed forwarding goes only through the
// target connection (so it reaches only the justified host), and its data
// channels are accepted only while the connection has a recorded session,
// where they are marked: "ssh -N" forwarding has nowhere to be recorded and
// is refused.

type directTCPIPMsg struct {
	DestAddr   string
	DestPort   uint32
	OriginAddr string
	OriginPort uint32
}

type forwardedTCPIPMsg struct {
	Addr       string
	Port       uint32
	OriginAddr string
	OriginPort uint32
}

// describeChannel names a forwarding channel for markers and audit.
func describeChannel(chType string, extra []byte) string {
	switch chType {
	case "direct-tcpip":
		var m directTCPIPMsg
		if ssh.Unmarshal(extra, &m) == nil {
			return fmt.Sprintf("direct-tcpip to %s:%d", m.DestAddr, m.DestPort)
		}
	case "forwarded-tcpip":
		var m forwardedTCPIPMsg
		if ssh.Unmarshal(extra, &m) == nil {
			return fmt.Sprintf("forwarded-tcpip from %s:%d", m.Addr, m.Port)
		}
	case "direct-streamlocal@openssh.com", "forwarded-streamlocal@openssh.com":
		var m stringMsg
		if ssh.Unmarshal(extra, &m) == nil {
			return fmt.Sprintf("%s %s", chType, m.Value)
		}
	}
	return chType
}

// markAll writes a marker into every live session of the connection and
// reports whether there was one.
func (st *connState) markAll(label string) bool {
	live := st.liveSessions()
	for _, ss := range live {
		ss.marker(label)
	}
	return len(live) > 0
}

// handleDirect handles client-opened forwarding channels (-L, -W, -D and
// their streamlocal variants).
func (s *Server) handleDirect(_ *gliderssh.Server, conn *ssh.ServerConn, newCh ssh.NewChannel, ctx gliderssh.Context) {
	st := stateOf(ctx)
	id, err := identityOf(conn.Permissions)
	if st == nil || err != nil {
		_ = newCh.Reject(ssh.Prohibited, "not authenticated")
		return
	}
	st.touch() // opening a channel is input for the idle timeout
	what := describeChannel(newCh.ChannelType(), newCh.ExtraData())
	if !id.permits(permitPort) {
		st.markAll("forwarding refused: " + what)
		s.reject(id.User, id.Host, st.remote, "forwarding refused: "+what+": certificate lacks "+permitPort)
		_ = newCh.Reject(ssh.Prohibited, "administratively prohibited")
		return
	}
	if !st.markAll("forwarding: " + what) {
		s.reject(id.User, id.Host, st.remote, "forwarding refused: "+what+": no recorded session")
		_ = newCh.Reject(ssh.Prohibited, "administratively prohibited: forwarding needs a recorded session")
		return
	}
	if !s.enter() {
		_ = newCh.Reject(ssh.ResourceShortage, "bastion shutting down")
		return
	}
	defer s.wg.Done()
	target, _, err := st.targetClient(ctx, conn, id, "")
	if err != nil {
		_ = newCh.Reject(ssh.ConnectionFailed, "target unavailable")
		return
	}
	tch, treqs, err := target.OpenChannel(newCh.ChannelType(), newCh.ExtraData())
	if err != nil {
		reason, msg := ssh.ConnectionFailed, err.Error()
		if oce, ok := err.(*ssh.OpenChannelError); ok {
			reason, msg = oce.Reason, oce.Message
		}
		_ = newCh.Reject(reason, msg)
		return
	}
	cch, creqs, err := newCh.Accept()
	if err != nil {
		_ = tch.Close()
		return
	}
	proxyChannel(cch, creqs, tch, treqs)
}

// handleGlobalForward handles tcpip-forward and streamlocal-forward (-R) and
// their cancels by forwarding them to the target connection.
func (s *Server) handleGlobalForward(ctx gliderssh.Context, _ *gliderssh.Server, req *ssh.Request) (bool, []byte) {
	st := stateOf(ctx)
	conn, _ := ctx.Value(gliderssh.ContextKeyConn).(*ssh.ServerConn)
	if st == nil || conn == nil {
		return false, nil
	}
	id, err := identityOf(conn.Permissions)
	if err != nil {
		return false, nil
	}
	if !id.permits(permitPort) {
		st.markAll("forwarding refused: " + req.Type)
		s.reject(id.User, id.Host, st.remote, "forwarding refused: "+req.Type+": certificate lacks "+permitPort)
		return false, nil
	}
	target, _, err := st.targetClient(ctx, conn, id, "")
	if err != nil {
		return false, nil
	}
	ok, payload, err := target.SendRequest(req.Type, req.WantReply, req.Payload)
	if err != nil {
		return false, nil
	}
	st.markAll(fmt.Sprintf("forwarding request %s (target answered %t)", req.Type, ok))
	return ok, payload
}

// acceptTargetChannels proxies the channels a target opens back towards the
// client, for the forwarding kinds the certificate permits. Unregistered
// kinds are rejected by x/crypto.
func (s *Server) acceptTargetChannels(st *connState, conn *ssh.ServerConn, target *ssh.Client, id identity) {
	var kinds []string
	if id.permits(permitPort) {
		kinds = append(kinds, "forwarded-tcpip", "forwarded-streamlocal@openssh.com")
	}
	if id.permits(permitAgent) {
		kinds = append(kinds, "auth-agent@openssh.com")
	}
	if id.permits(permitX11) {
		kinds = append(kinds, "x11")
	}
	for _, k := range kinds {
		in := target.HandleChannelOpen(k)
		if in == nil {
			continue
		}
		if !s.goTracked(func() { s.reverseChannels(st, conn, in) }) {
			go func() {
				for nc := range in {
					_ = nc.Reject(ssh.ResourceShortage, "bastion shutting down")
				}
			}()
		}
	}
}

// reverseChannels proxies each target-opened channel to the client.
func (s *Server) reverseChannels(st *connState, conn *ssh.ServerConn, in <-chan ssh.NewChannel) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range in {
		what := describeChannel(nc.ChannelType(), nc.ExtraData())
		if !st.markAll("forwarding: " + what) {
			_ = nc.Reject(ssh.Prohibited, "administratively prohibited: forwarding needs a recorded session")
			continue
		}
		cch, creqs, err := conn.OpenChannel(nc.ChannelType(), nc.ExtraData())
		if err != nil {
			_ = nc.Reject(ssh.ConnectionFailed, err.Error())
			continue
		}
		tch, treqs, err := nc.Accept()
		if err != nil {
			_ = cch.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			proxyChannel(tch, treqs, cch, creqs)
		}()
	}
}

// proxyChannel copies data, stderr, EOF and requests both ways between a
// and b until both are closed.
func proxyChannel(a ssh.Channel, areqs <-chan *ssh.Request, b ssh.Channel, breqs <-chan *ssh.Request) {
	var wg sync.WaitGroup
	pipe := func(dst, src ssh.Channel) {
		defer wg.Done()
		var inner sync.WaitGroup
		inner.Add(1)
		go func() {
			defer inner.Done()
			_, _ = io.Copy(dst.Stderr(), src.Stderr())
		}()
		_, _ = io.Copy(dst, src)
		inner.Wait()
		_ = dst.CloseWrite()
	}
	reqs := func(dst ssh.Channel, in <-chan *ssh.Request) {
		defer wg.Done()
		for r := range in {
			ok, err := dst.SendRequest(r.Type, r.WantReply, r.Payload)
			_ = r.Reply(ok && err == nil, nil)
		}
		_ = dst.Close()
	}
	wg.Add(4)
	go pipe(a, b)
	go pipe(b, a)
	go reqs(b, areqs)
	go reqs(a, breqs)
	wg.Wait()
}

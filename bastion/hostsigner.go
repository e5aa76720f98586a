package bastion

import (
	"fmt"
	"net"

	"golang.org/x/crypto/ssh"
)

// SetHostSigner replaces the bastion's host certificate signer for every
// connection accepted from now on; connections already open keep the key
// exchange they made. It checks signer as New checks Config.HostSigner
// (a host certificate, Ed25519 or RSA with SHA-2) and refuses one whose
// algorithm differs from the signer in use, so that a renewal never leaves
// two host keys on offer.
func (s *Server) SetHostSigner(signer ssh.Signer) error {
	c := s.cfg
	c.HostSigner = signer
	if err := c.Validate(); err != nil {
		return fmt.Errorf("set host signer: %w", err)
	}
	if err := checkHostSigner(signer); err != nil {
		return fmt.Errorf("set host signer: %w", err)
	}
	if got, want := signer.PublicKey().Type(), s.cfg.HostSigner.PublicKey().Type(); got != want {
		return fmt.Errorf("set host signer: type %s differs from the %s in use", got, want)
	}
	// gliderlabs builds each connection's ServerConfig from HostSigners
	// under its lock, and AddHostKey replaces the signer of the same
	// algorithm under that lock: the swap is safe with handshakes under way.
	s.gl.AddHostKey(signer)
	return nil
}

// egressFor is the source-address of a target certificate for a target at
// addr: Config.EgressAddresses when set, else the local address the
// kernel's route to the target uses, as a single address (/32 or /128).
// The route is asked with a UDP "connect", which sends no packet. An
// address that cannot be routed leaves the certificate unrestricted; the
// dial will fail on its own.
func (s *Server) egressFor(addr string) []string {
	if len(s.cfg.EgressAddresses) > 0 {
		return s.cfg.EgressAddresses
	}
	src, err := routeSource(addr)
	if err != nil {
		s.log.Warn("no source address for the target certificate", "target", addr, "err", err)
		return nil
	}
	return []string{src}
}

// routeSource returns, as a CIDR of one address, the local address this
// machine would send from to reach the host:port addr.
func routeSource(addr string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", fmt.Errorf("route to %s: %w", addr, err)
	}
	defer c.Close()
	la, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || la.IP == nil || la.IP.IsUnspecified() {
		return "", fmt.Errorf("route to %s: no local address (%v)", addr, c.LocalAddr())
	}
	if ip4 := la.IP.To4(); ip4 != nil {
		return (&net.IPNet{IP: ip4, Mask: net.CIDRMask(32, 32)}).String(), nil
	}
	return (&net.IPNet{IP: la.IP, Mask: net.CIDRMask(128, 128)}).String(), nil
}

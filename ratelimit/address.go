package ratelimit

import (
	"net"
	"net/netip"
)

// AddressKey is the unit a per-address limit counts: an IPv4 address
// itself, and for IPv6 its /64, since one client is routinely handed a
// whole /64 and could otherwise take a fresh bucket (or a fresh connection
// slot) per address. addr is an IP or host:port; what is neither is its
// own key.
func AddressKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

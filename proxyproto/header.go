// Package proxyproto reads the PROXY protocol header (HAProxy's
// proxy-protocol.txt, versions 2 and 1) that a TCP load balancer sends
// first on every connection it forwards, so the server sees the client's
// address instead of the balancer's. It parses strictly: TCP over IPv4 or
// IPv6 and the LOCAL command only, every length checked, a CRC32c TLV
// verified; anything else is an error naming the problem. It does no I/O
// beyond the connection it reads from.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Command is what a header asks of the receiver.
type Command int

const (
	// Local is a connection the balancer made itself (a health check):
	// the connection's own addresses stand.
	Local Command = iota
	// Proxy is a relayed connection: Source is the client.
	Proxy
)

// Header is one parsed PROXY protocol header.
type Header struct {
	Version int
	Command Command
	// Source and Dest are the client's address and the address it
	// connected to, for Proxy; nil for Local (and v1's UNKNOWN).
	Source, Dest *net.TCPAddr
}

// Limits of what Read accepts.
const (
	// MaxV2Len is the largest v2 address-and-TLV block accepted. The spec
	// allows 65535; balancers send at most a few hundred bytes (addresses
	// plus a handful of TLVs), so a longer one is refused rather than
	// buffered.
	MaxV2Len = 1024
	// maxV1Len is the spec's longest v1 line, CRLF included.
	maxV1Len = 107
)

// v2Sig is the 12 bytes every v2 header starts with.
var v2Sig = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// ErrNoHeader is wrapped by Read's error when the connection does not start
// with a PROXY protocol header at all.
var ErrNoHeader = errors.New("no PROXY protocol header")

// v2 families and transports (the 14th byte).
const (
	famTCP4  = 0x11
	famTCP6  = 0x21
	tlvCRC32 = 0x03
)

// Read reads one header from r, and not a byte more: what follows is the
// relayed connection's data. r's deadline is the caller's business.
func Read(r io.Reader) (Header, error) {
	var start [16]byte
	// Both versions are at least 16 bytes long (v1's shortest is
	// "PROXY UNKNOWN\r\n", 15: read 15 first, then decide).
	if _, err := io.ReadFull(r, start[:15]); err != nil {
		return Header{}, fmt.Errorf("read PROXY protocol header: %w", err)
	}
	switch {
	case bytes.Equal(start[:12], v2Sig[:]):
		if _, err := io.ReadFull(r, start[15:]); err != nil {
			return Header{}, fmt.Errorf("read PROXY protocol v2 header: %w", err)
		}
		return readV2(r, start)
	case bytes.HasPrefix(start[:], []byte("PROXY ")):
		return readV1(r, start[:15])
	}
	return Header{}, fmt.Errorf("%w: connection starts with %q", ErrNoHeader, start[:15])
}

// readV2 reads the rest of a v2 header whose 16 fixed bytes are start.
func readV2(r io.Reader, start [16]byte) (Header, error) {
	if v := start[12] >> 4; v != 2 {
		return Header{}, fmt.Errorf("PROXY protocol v2: version %d, want 2", v)
	}
	n := int(binary.BigEndian.Uint16(start[14:16]))
	if n > MaxV2Len {
		return Header{}, fmt.Errorf("PROXY protocol v2: length %d over the limit of %d", n, MaxV2Len)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return Header{}, fmt.Errorf("PROXY protocol v2: read %d bytes of addresses: %w", n, err)
	}
	return parseV2(start, body)
}

// parseV2 decodes the addresses and checks the TLVs of a v2 header.
func parseV2(start [16]byte, body []byte) (Header, error) {
	h := Header{Version: 2}
	var addrLen int
	switch cmd := start[12] & 0x0F; cmd {
	case 0x0:
		h.Command = Local
		// LOCAL carries no addresses to use, whatever family it names;
		// TLVs after an address block cannot be told apart from it, so
		// only the CRC is looked for when the family says how long it is.
		addrLen = familyLen(start[13])
		if addrLen < 0 || addrLen > len(body) {
			return h, nil
		}
	case 0x1:
		h.Command = Proxy
		fam := start[13]
		if fam != famTCP4 && fam != famTCP6 {
			return Header{}, fmt.Errorf("PROXY protocol v2: family and transport 0x%02x, want TCP over IPv4 (0x11) or IPv6 (0x21)", fam)
		}
		addrLen = familyLen(fam)
		if len(body) < addrLen {
			return Header{}, fmt.Errorf("PROXY protocol v2: length %d is shorter than the %d bytes of its addresses", len(body), addrLen)
		}
		ipLen := (addrLen - 4) / 2
		src, _ := netip.AddrFromSlice(body[:ipLen])
		dst, _ := netip.AddrFromSlice(body[ipLen : 2*ipLen])
		sport := binary.BigEndian.Uint16(body[2*ipLen:])
		dport := binary.BigEndian.Uint16(body[2*ipLen+2:])
		h.Source = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src.Unmap(), sport))
		h.Dest = net.TCPAddrFromAddrPort(netip.AddrPortFrom(dst.Unmap(), dport))
	default:
		return Header{}, fmt.Errorf("PROXY protocol v2: command 0x%x, want LOCAL (0x0) or PROXY (0x1)", cmd)
	}
	if err := checkTLVs(start, body, addrLen); err != nil {
		return Header{}, err
	}
	return h, nil
}

// familyLen is the length of the address block of fam, -1 for UNSPEC or an
// unknown one.
func familyLen(fam byte) int {
	switch fam >> 4 {
	case 0x1:
		return 12
	case 0x2:
		return 36
	case 0x3:
		return 216
	}
	return -1
}

// checkTLVs walks the TLVs after the addresses: each must fit in the
// header, and a CRC32c one must match the header's checksum.
func checkTLVs(start [16]byte, body []byte, addrLen int) error {
	for off := addrLen; off < len(body); {
		if len(body)-off < 3 {
			return fmt.Errorf("PROXY protocol v2: %d stray bytes after the TLVs at offset %d", len(body)-off, off)
		}
		typ, n := body[off], int(binary.BigEndian.Uint16(body[off+1:]))
		if off+3+n > len(body) {
			return fmt.Errorf("PROXY protocol v2: TLV 0x%02x at offset %d of length %d runs past the header's %d bytes", typ, off, n, len(body))
		}
		if typ == tlvCRC32 {
			if n != 4 {
				return fmt.Errorf("PROXY protocol v2: CRC32c TLV of length %d, want 4", n)
			}
			if err := checkCRC(start, body, off+3); err != nil {
				return err
			}
		}
		off += 3 + n
	}
	return nil
}

// checkCRC compares the CRC32c at body[at:at+4] with that of the whole
// header with those four bytes zero.
func checkCRC(start [16]byte, body []byte, at int) error {
	want := binary.BigEndian.Uint32(body[at:])
	zeroed := bytes.Clone(body)
	clear(zeroed[at : at+4])
	tab := crc32.MakeTable(crc32.Castagnoli)
	got := crc32.Update(crc32.Checksum(start[:], tab), tab, zeroed)
	if got != want {
		return fmt.Errorf("PROXY protocol v2: CRC32c 0x%08x does not match the header's 0x%08x", want, got)
	}
	return nil
}

// readV1 reads the rest of a v1 line whose first bytes are got, one byte at
// a time so nothing after the CRLF is consumed.
func readV1(r io.Reader, got []byte) (Header, error) {
	line := append(make([]byte, 0, maxV1Len), got...)
	var b [1]byte
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if len(line) >= maxV1Len {
			return Header{}, fmt.Errorf("PROXY protocol v1: no CRLF in the first %d bytes", maxV1Len)
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("PROXY protocol v1: read line: %w", err)
		}
		line = append(line, b[0])
	}
	return parseV1(string(line[:len(line)-2]))
}

// parseV1 decodes "PROXY TCP4|TCP6 SRC DST SPORT DPORT" or "PROXY UNKNOWN…".
func parseV1(line string) (Header, error) {
	f := strings.Split(line, " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return Header{Version: 1, Command: Local}, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return Header{}, fmt.Errorf("PROXY protocol v1: line %q, want \"PROXY TCP4|TCP6 SRC DST SPORT DPORT\"", line)
	}
	src, err := v1Addr(f[1], f[2], f[4])
	if err != nil {
		return Header{}, err
	}
	dst, err := v1Addr(f[1], f[3], f[5])
	if err != nil {
		return Header{}, err
	}
	return Header{Version: 1, Command: Proxy, Source: src, Dest: dst}, nil
}

func v1Addr(proto, ip, port string) (*net.TCPAddr, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is4() != (proto == "TCP4") || a.Is4In6() {
		return nil, fmt.Errorf("PROXY protocol v1: %q is not an %s address", ip, proto)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (len(port) > 1 && port[0] == '0') {
		return nil, fmt.Errorf("PROXY protocol v1: port %q is not a number from 0 to 65535", port)
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(p))), nil
}

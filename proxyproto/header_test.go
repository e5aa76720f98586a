package proxyproto

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// v2 builds a v2 header: ver_cmd, fam, then the address block and TLVs.
func v2(verCmd, fam byte, body ...[]byte) []byte {
	b := append([]byte{}, v2Sig[:]...)
	rest := bytes.Join(body, nil)
	b = append(b, verCmd, fam, byte(len(rest)>>8), byte(len(rest)))
	return append(b, rest...)
}

// tcp4 is the address block of 192.0.2.7:51000 -> 10.0.0.1:7443.
func tcp4() []byte {
	return []byte{192, 0, 2, 7, 10, 0, 0, 1, 0xC7, 0x38, 0x1D, 0x13}
}

func tcp6() []byte {
	src := netip.MustParseAddr("2001:db8::7").As16()
	dst := netip.MustParseAddr("2001:db8::1").As16()
	b := append(src[:], dst[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, 51000), 2222)
}

func tlv(typ byte, v ...byte) []byte {
	return append([]byte{typ, byte(len(v) >> 8), byte(len(v))}, v...)
}

// withCRC appends a CRC32c TLV with the right checksum (or a wrong one).
func withCRC(h []byte, wrong bool) []byte {
	h = append(bytes.Clone(h), tlvCRC32, 0, 4, 0, 0, 0, 0)
	n := binary.BigEndian.Uint16(h[14:]) + 7
	binary.BigEndian.PutUint16(h[14:], n)
	sum := crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli))
	if wrong {
		sum++
	}
	binary.BigEndian.PutUint32(h[len(h)-4:], sum)
	return h
}

func TestRead(t *testing.T) {
	const after = "SSH-2.0-client\r\n"
	cases := []struct {
		name     string
		in       []byte
		want     string // Source, "" for none
		cmd      Command
		wantErr  string
		readRest bool
	}{
		{name: "v2 tcp4", in: v2(0x21, famTCP4, tcp4()), want: "192.0.2.7:51000", cmd: Proxy},
		{name: "v2 tcp6", in: v2(0x21, famTCP6, tcp6()), want: "[2001:db8::7]:51000", cmd: Proxy},
		{name: "v2 tlvs skipped", in: v2(0x21, famTCP4, tcp4(), tlv(0x04), tlv(0xEA, 1, 'v', 'p', 'c'), tlv(0x01, 'h', '2')), want: "192.0.2.7:51000", cmd: Proxy},
		{name: "v2 good crc", in: withCRC(v2(0x21, famTCP4, tcp4(), tlv(0x05, 1, 2)), false), want: "192.0.2.7:51000", cmd: Proxy},
		{name: "v2 local unspec", in: v2(0x20, 0x00), cmd: Local},
		{name: "v2 local with addresses", in: v2(0x20, famTCP4, tcp4()), cmd: Local},
		{name: "v1 tcp4", in: []byte("PROXY TCP4 192.0.2.7 10.0.0.1 51000 7443\r\n"), want: "192.0.2.7:51000", cmd: Proxy},
		{name: "v1 tcp6", in: []byte("PROXY TCP6 2001:db8::7 2001:db8::1 51000 22\r\n"), want: "[2001:db8::7]:51000", cmd: Proxy},
		{name: "v1 unknown", in: []byte("PROXY UNKNOWN\r\n"), cmd: Local},

		{name: "no header", in: []byte("SSH-2.0-OpenSSH_9.2\r\n"), wantErr: "no PROXY protocol header"},
		{name: "tls instead", in: []byte{0x16, 0x03, 0x01, 0x02, 0x00, 1, 0, 1, 0xfc, 3, 3, 0, 0, 0, 0, 0}, wantErr: "no PROXY protocol header"},
		{name: "empty", in: nil, wantErr: "EOF"},
		{name: "truncated fixed part", in: v2Sig[:], wantErr: "unexpected EOF"},
		{name: "truncated addresses", in: v2(0x21, famTCP4, tcp4())[:20], wantErr: "read 12 bytes of addresses"},
		{name: "version 1 in binary", in: v2(0x11, famTCP4, tcp4()), wantErr: "version 1, want 2"},
		{name: "bad command", in: v2(0x22, famTCP4, tcp4()), wantErr: "command 0x2"},
		{name: "udp", in: v2(0x21, 0x12, tcp4()), wantErr: "family and transport 0x12"},
		{name: "unix", in: v2(0x21, 0x31, make([]byte, 216)), wantErr: "family and transport 0x31"},
		{name: "proxy unspec", in: v2(0x21, 0x00), wantErr: "family and transport 0x00"},
		{name: "short for family", in: v2(0x21, famTCP6, tcp4()), wantErr: "shorter than the 36 bytes"},
		{name: "too long", in: v2(0x21, famTCP4, tcp4(), tlv(0x04, make([]byte, MaxV2Len)...)), wantErr: "over the limit"},
		{name: "tlv past end", in: v2(0x21, famTCP4, tcp4(), []byte{0x04, 0, 9, 1}), wantErr: "runs past"},
		{name: "stray bytes", in: v2(0x21, famTCP4, tcp4(), []byte{0x04, 0}), wantErr: "stray bytes"},
		{name: "bad crc", in: withCRC(v2(0x21, famTCP4, tcp4()), true), wantErr: "CRC32c"},
		{name: "crc wrong length", in: v2(0x21, famTCP4, tcp4(), tlv(tlvCRC32, 1, 2)), wantErr: "CRC32c TLV of length 2"},
		{name: "v1 no crlf", in: []byte("PROXY TCP4 " + strings.Repeat("1", 120)), wantErr: "no CRLF"},
		{name: "v1 truncated", in: []byte("PROXY TCP4 192.0.2.7 10"), wantErr: "read line"},
		{name: "v1 tcp6 addr in tcp4", in: []byte("PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n"), wantErr: "not an TCP4 address"},
		{name: "v1 port too big", in: []byte("PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n"), wantErr: "port \"65536\""},
		{name: "v1 leading zero port", in: []byte("PROXY TCP4 192.0.2.7 10.0.0.1 022 2\r\n"), wantErr: "port \"022\""},
		{name: "v1 double space", in: []byte("PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n"), wantErr: "want \"PROXY TCP4|TCP6"},
		{name: "v1 udp", in: []byte("PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n"), wantErr: "want \"PROXY TCP4|TCP6"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(append(bytes.Clone(tc.in), after...))
			if tc.wantErr != "" {
				r = bytes.NewReader(tc.in)
			}
			h, err := Read(r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Read = %+v, %v; want an error with %q", h, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			got := ""
			if h.Source != nil {
				got = h.Source.String()
			}
			if got != tc.want || h.Command != tc.cmd {
				t.Errorf("Read = source %q command %v, want %q %v", got, h.Command, tc.want, tc.cmd)
			}
			// Not a byte past the header is consumed.
			rest, _ := io.ReadAll(r)
			if string(rest) != after {
				t.Errorf("left %q after the header, want %q", rest, after)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	cases := []struct {
		in      []string
		want    string
		wantErr string
	}{
		{in: []string{"10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::ffff:10.1.0.0/112", "10.1.2.3/16"}, want: "[10.0.0.0/8 127.0.0.1/32 2001:db8::/32 10.1.0.0/16 10.1.0.0/16]"},
		{in: []string{"10.0.0.0/33"}, wantErr: "\"10.0.0.0/33\""},
		{in: []string{"lb.example"}, wantErr: "\"lb.example\""},
		{in: []string{"fe80::1%eth0"}, wantErr: "fe80::1%eth0"},
	}
	for _, tc := range cases {
		got, err := ParsePrefixes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePrefixes(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || fmtPrefixes(got) != tc.want {
			t.Errorf("ParsePrefixes(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func fmtPrefixes(p []netip.Prefix) string {
	s := make([]string, len(p))
	for i, x := range p {
		s[i] = x.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

// FuzzRead checks that Read never panics, never reads past what it says
// the header is, and that what it accepts names a usable source.
func FuzzRead(f *testing.F) {
	for _, seed := range [][]byte{
		v2(0x21, famTCP4, tcp4()), v2(0x21, famTCP6, tcp6(), tlv(0x04, 1)), v2(0x20, 0x00),
		withCRC(v2(0x21, famTCP4, tcp4()), false),
		[]byte("PROXY TCP4 192.0.2.7 10.0.0.1 51000 7443\r\n"), []byte("PROXY UNKNOWN\r\n"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := Read(r)
		if err != nil {
			return
		}
		used := len(in) - r.Len()
		if used > 16+MaxV2Len {
			t.Fatalf("accepted a %d-byte header", used)
		}
		if h.Command == Proxy && (h.Source == nil || h.Source.IP == nil) {
			t.Fatalf("PROXY header without a source: %+v", h)
		}
	})
}

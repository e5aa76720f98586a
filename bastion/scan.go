package bastion

import (
	"encoding/binary"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// scpMaxLine bounds an scp control line; longer lines stop the scanner.
const scpMaxLine = 4096

// scpParser follows the sending side of the legacy scp protocol and reports
// the files and directories it announces ("C0644 123 name", "D0755 0 dir").
// It only observes; a malformed stream just stops it.
type scpParser struct {
	line   []byte
	skip   int64 // file bytes plus the status byte still to pass
	broken bool
}

func (p *scpParser) feed(b []byte) []string {
	var out []string
	for len(b) > 0 && !p.broken {
		if p.skip > 0 {
			n := min(int64(len(b)), p.skip)
			p.skip -= n
			b = b[n:]
			continue
		}
		i := indexByte(b, '\n')
		if i < 0 {
			p.line = append(p.line, b...)
			if len(p.line) > scpMaxLine {
				p.broken = true
			}
			return out
		}
		line := string(append(p.line, b[:i]...))
		p.line = p.line[:0]
		b = b[i+1:]
		// A leading status byte (0) from the previous file may precede
		// the line when the ack and the line arrive together.
		line = strings.TrimLeft(line, "\x00")
		if line == "" {
			continue
		}
		switch line[0] {
		case 'C', 'D':
			f := strings.SplitN(line[1:], " ", 3)
			if len(f) != 3 {
				p.broken = true
				continue
			}
			size, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || size < 0 {
				p.broken = true
				continue
			}
			if line[0] == 'D' {
				out = append(out, fmt.Sprintf("scp dir %s (mode %s)", f[2], f[0]))
				continue
			}
			out = append(out, fmt.Sprintf("scp file %s (%d bytes, mode %s)", f[2], size, f[0]))
			p.skip = size + 1
		case 'E', 'T':
		case 1, 2:
			out = append(out, "scp error: "+line[1:])
		default:
			p.broken = true
		}
	}
	return out
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// SFTP packet types the sftp scanner reports (draft-ietf-secsh-filexfer-02).
const (
	sftpOpen   = 3
	sftpRemove = 13
	sftpMkdir  = 14
	sftpRename = 18
)

// sftpMaxNamed bounds the packets the scanner buffers to read names from.
const sftpMaxNamed = 64 * 1024

// sftpParser follows client-to-server SFTP packets and reports OPEN,
// REMOVE, MKDIR and RENAME with their paths. Other packets (notably WRITE
// data) are skipped without buffering.
type sftpParser struct {
	hdr    []byte // up to 5 bytes: length and type
	pkt    []byte // body of a packet being buffered
	need   int    // body bytes still to buffer
	skip   int    // body bytes still to skip
	broken bool
}

func (p *sftpParser) feed(b []byte) []string {
	var out []string
	for len(b) > 0 && !p.broken {
		switch {
		case p.skip > 0:
			n := min(len(b), p.skip)
			p.skip -= n
			b = b[n:]
		case p.need > 0:
			n := min(len(b), p.need)
			p.pkt = append(p.pkt, b[:n]...)
			p.need -= n
			b = b[n:]
			if p.need == 0 {
				if ev := sftpEvent(p.pkt); ev != "" {
					out = append(out, ev)
				}
				p.pkt = p.pkt[:0]
			}
		default:
			n := min(len(b), 5-len(p.hdr))
			p.hdr = append(p.hdr, b[:n]...)
			b = b[n:]
			if len(p.hdr) < 5 {
				continue
			}
			length := int(binary.BigEndian.Uint32(p.hdr))
			typ := p.hdr[4]
			p.hdr = p.hdr[:0]
			if length < 1 || length > 1<<24 {
				p.broken = true
				continue
			}
			body := length - 1
			switch typ {
			case sftpOpen, sftpRemove, sftpMkdir, sftpRename:
				if body > sftpMaxNamed {
					p.skip = body
					continue
				}
				p.pkt = append(p.pkt[:0], typ)
				p.need = body
				if body == 0 {
					p.pkt = p.pkt[:0]
				}
			default:
				p.skip = body
			}
		}
	}
	return out
}

// sftpEvent describes a buffered packet: type byte, then id and strings.
func sftpEvent(pkt []byte) string {
	if len(pkt) < 5 {
		return ""
	}
	typ, rest := pkt[0], pkt[5:] // skip the request id
	first, rest, ok := sftpString(rest)
	if !ok {
		return ""
	}
	switch typ {
	case sftpOpen:
		if len(rest) < 4 {
			return ""
		}
		flags := binary.BigEndian.Uint32(rest)
		mode := "read"
		if flags&0x2 != 0 { // SSH_FXF_WRITE
			mode = "write"
			if flags&0x1 != 0 {
				mode = "read-write"
			}
		}
		return fmt.Sprintf("sftp open %s (%s)", strconv.Quote(first), mode)
	case sftpRemove:
		return "sftp remove " + strconv.Quote(first)
	case sftpMkdir:
		return "sftp mkdir " + strconv.Quote(first)
	case sftpRename:
		second, _, ok := sftpString(rest)
		if !ok {
			return ""
		}
		return fmt.Sprintf("sftp rename %s to %s", strconv.Quote(first), strconv.Quote(second))
	}
	return ""
}

func sftpString(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return "", nil, false
	}
	return string(b[4 : 4+n]), b[4+n:], true
}

// scanners are the transfer-protocol scanners of the input and output
// streams of command, nil where there is nothing to scan.
func (ss *session) scanners(su *setup, command string) (in, out scanner) {
	scpUp, scpDown := scpDirections(command)
	if scpUp {
		in = &scpParser{}
	} else if su.reqType == "subsystem" && su.command == "sftp" && ss.id.ForceCommand == "" {
		in = &sftpParser{}
	}
	if scpDown {
		out = &scpParser{}
	}
	return in, out
}

// scanner extracts file names from a transfer protocol stream.
type scanner interface {
	feed(p []byte) []string
}

// isSCP reports whether command runs the scp protocol (scp -t or -f).
func isSCP(command string) bool {
	f := strings.Fields(command)
	return len(f) > 0 && path.Base(f[0]) == "scp"
}

// scpDirections reports whether an scp command receives (upload: -t) or
// sends (download: -f) files.
func scpDirections(command string) (up, down bool) {
	if !isSCP(command) {
		return false, false
	}
	for _, a := range strings.Fields(command)[1:] {
		if !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "--") {
			continue
		}
		up = up || strings.Contains(a, "t")
		down = down || strings.Contains(a, "f")
	}
	return up, down
}

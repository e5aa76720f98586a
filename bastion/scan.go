package bastion

import (
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

// scanners are the transfer-protocol scanners of the input and output
// streams of command, nil where there is nothing to scan; end, when not
// nil, is called once both streams are done and returns the markers of what
// was still open.
func (ss *session) scanners(su *setup, command string) (in, out scanner, end func() []string) {
	scpUp, scpDown := scpDirections(command)
	if scpUp {
		in = &scpParser{}
	} else if su.reqType == "subsystem" && su.command == "sftp" && ss.id.ForceCommand == "" {
		t := newSFTPTracker()
		return t.fromClient(), t.fromServer(), t.end
	}
	if scpDown {
		out = &scpParser{}
	}
	return in, out, nil
}

// scanner extracts file names (and byte counts) from a transfer protocol
// stream as markers.
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

package bastion

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
)

// SFTP packet types the scanner follows (draft-ietf-secsh-filexfer-02,
// version 3, which OpenSSH speaks).
const (
	sftpInit    = 1
	sftpVersion = 2
	sftpOpen    = 3
	sftpClose   = 4
	sftpRead    = 5
	sftpWrite   = 6
	sftpRemove  = 13
	sftpMkdir   = 14
	sftpRename  = 18
	// sftpExtended carries OpenSSH's extensions: stock sftp renames with
	// posix-rename@openssh.com, and ln and cp use hardlink@openssh.com and
	// copy-data.
	sftpExtended = 200
	sftpStatus   = 101
	sftpHandle   = 102
	sftpData     = 103
)

// Bounds of one session's SFTP accounting. A hostile client can open many
// handles or send many requests without reading the answers; past these
// bounds requests and handles are left uncounted, the number is reported at
// the session's end, and memory stays bounded (about sftpMaxPending
// requests of at most sftpMaxPath bytes each, plus sftpMaxHandles files).
const (
	// sftpMaxNamed bounds the prefix of a packet that carries path names
	// (OPEN, REMOVE, MKDIR, RENAME) read to find them.
	sftpMaxNamed = 64 * 1024
	// sftpMaxHandleLen is the longest handle the protocol allows (256).
	sftpMaxHandleLen = 256
	// sftpMaxPath bounds a path kept for a byte-count marker; the open
	// marker carries it whole.
	sftpMaxPath = 4096
	// sftpMaxHandles bounds the open file handles counted per session.
	sftpMaxHandles = 1024
	// sftpMaxPending bounds the requests awaiting an answer per session
	// (OpenSSH's sftp and scp keep at most 64 in flight by default).
	sftpMaxPending = 1024
	// sftpMaxPacket is the longest packet followed: OpenSSH refuses more
	// than 256 KiB; a longer length stops the scanner.
	sftpMaxPacket = 1 << 24
)

// sftpFramer splits one direction of an SFTP stream into packets and hands
// each one's type, the first bytes of its body (after the type byte; up to
// what keep asks for) and the body's length to emit. Only that prefix is
// buffered: the rest of a packet (WRITE and DATA payloads) is skipped.
type sftpFramer struct {
	keep   func(typ byte) int
	hdr    []byte // up to 5 bytes: length and type
	typ    byte
	body   int    // body length of the current packet
	pkt    []byte // the prefix being buffered
	need   int    // prefix bytes still to buffer
	skip   int    // body bytes still to skip
	broken bool
}

// feed consumes b, calling emit for each packet once its prefix is in.
func (f *sftpFramer) feed(b []byte, emit func(typ byte, prefix []byte, body int)) {
	for len(b) > 0 && !f.broken {
		switch {
		case f.skip > 0:
			n := min(len(b), f.skip)
			f.skip -= n
			b = b[n:]
		case f.need > 0:
			n := min(len(b), f.need)
			f.pkt = append(f.pkt, b[:n]...)
			f.need -= n
			b = b[n:]
			if f.need == 0 {
				emit(f.typ, f.pkt, f.body)
				f.skip = f.body - len(f.pkt)
				f.pkt = f.pkt[:0]
			}
		default:
			n := min(len(b), 5-len(f.hdr))
			f.hdr = append(f.hdr, b[:n]...)
			b = b[n:]
			if len(f.hdr) < 5 {
				continue
			}
			length := binary.BigEndian.Uint32(f.hdr)
			f.typ = f.hdr[4]
			f.hdr = f.hdr[:0]
			if length < 1 || length > sftpMaxPacket {
				f.broken = true
				continue
			}
			f.body = int(length) - 1
			f.need = min(f.body, f.keep(f.typ))
			if f.need == 0 {
				emit(f.typ, nil, f.body)
				f.skip = f.body
			}
		}
	}
}

// sftpFile is an open file handle and the bytes moved through it.
type sftpFile struct {
	path          string
	mode          string // "read", "write" or "read-write", from the OPEN flags
	read, written int64
}

// sftpReq is a client request awaiting its answer.
type sftpReq struct {
	typ    byte
	path   string // OPEN
	mode   string // OPEN
	handle string // CLOSE, READ, WRITE
	n      int64  // WRITE: payload length
}

// sftpTracker follows both directions of one SFTP session: it marks OPEN,
// REMOVE, MKDIR and RENAME as the client sends them, and counts per file
// handle the bytes the target confirmed: READ data the target sent and
// WRITE payloads it answered OK. A handle's counts are marked when the
// target answers its CLOSE, and at the session's end for handles still
// open. The two directions are fed from two goroutines.
type sftpTracker struct {
	client, server sftpFramer

	mu        sync.Mutex
	handles   map[string]*sftpFile
	pending   map[uint32][]sftpReq // by request id, oldest first
	npending  int
	untracked int // requests and handles left uncounted: a table was full
	out       []string
}

func newSFTPTracker() *sftpTracker {
	t := &sftpTracker{handles: make(map[string]*sftpFile), pending: make(map[uint32][]sftpReq)}
	t.client.keep = sftpClientKeep
	t.server.keep = sftpServerKeep
	return t
}

// sftpClientKeep is how much of a client packet's body the tracker reads.
func sftpClientKeep(typ byte) int {
	switch typ {
	case sftpInit:
		return 0
	case sftpOpen, sftpRemove, sftpMkdir, sftpRename, sftpExtended:
		return sftpMaxNamed
	case sftpClose, sftpRead:
		return 4 + 4 + sftpMaxHandleLen // id, handle
	case sftpWrite:
		return 4 + 4 + sftpMaxHandleLen + 8 + 4 // id, handle, offset, data length
	}
	return 4 // id
}

// sftpServerKeep is how much of a target packet's body the tracker reads.
func sftpServerKeep(typ byte) int {
	switch typ {
	case sftpVersion:
		return 0
	case sftpHandle:
		return 4 + 4 + sftpMaxHandleLen // id, handle
	case sftpData, sftpStatus:
		return 8 // id, data length or status code
	}
	return 4 // id
}

// fromClient is the scanner of the client-to-target stream.
func (t *sftpTracker) fromClient() scanner { return sftpSide{t: t} }

// fromServer is the scanner of the target-to-client stream.
func (t *sftpTracker) fromServer() scanner { return sftpSide{t: t, server: true} }

// sftpSide is one direction of a tracker, as a scanner.
type sftpSide struct {
	t      *sftpTracker
	server bool
}

func (s sftpSide) feed(p []byte) []string {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.server {
		t.server.feed(p, t.answer)
	} else {
		t.client.feed(p, t.request)
	}
	out := t.out
	t.out = nil
	return out
}

// request handles a client packet: marks what names a path, and queues
// every request (but INIT) for its answer. Called with t.mu held.
func (t *sftpTracker) request(typ byte, b []byte, body int) {
	if typ == sftpInit || len(b) < 4 {
		return
	}
	id := binary.BigEndian.Uint32(b)
	r := sftpReq{typ: typ}
	rest := b[4:]
	switch typ {
	case sftpOpen, sftpRemove, sftpMkdir, sftpRename:
		t.named(&r, rest)
	case sftpExtended:
		t.extended(rest)
	case sftpClose, sftpRead:
		r.handle, _, _ = sftpString(rest)
	case sftpWrite:
		h, rest, ok := sftpString(rest)
		if ok && len(rest) >= 12 {
			n := int64(binary.BigEndian.Uint32(rest[8:]))
			// The payload must fit in the packet, as the target checks.
			if n <= int64(body-(4+4+len(h)+12)) {
				r.handle, r.n = h, n
			}
		}
	}
	if t.npending >= sftpMaxPending {
		t.untracked++
		return
	}
	t.pending[id] = append(t.pending[id], r)
	t.npending++
}

// named marks a packet that names paths and keeps what OPEN's answer needs.
func (t *sftpTracker) named(r *sftpReq, b []byte) {
	first, rest, ok := sftpString(b)
	if !ok {
		return
	}
	switch r.typ {
	case sftpOpen:
		if len(rest) < 4 {
			return
		}
		flags := binary.BigEndian.Uint32(rest)
		r.mode = "read"
		if flags&0x2 != 0 { // SSH_FXF_WRITE
			r.mode = "write"
			if flags&0x1 != 0 {
				r.mode = "read-write"
			}
		}
		r.path = first
		if len(r.path) > sftpMaxPath {
			r.path = r.path[:sftpMaxPath] + "…"
		}
		t.out = append(t.out, fmt.Sprintf("sftp open %s (%s)", strconv.Quote(first), r.mode))
	case sftpRemove:
		t.out = append(t.out, "sftp remove "+strconv.Quote(first))
	case sftpMkdir:
		t.out = append(t.out, "sftp mkdir "+strconv.Quote(first))
	case sftpRename:
		if second, _, ok := sftpString(rest); ok {
			t.out = append(t.out, fmt.Sprintf("sftp rename %s to %s", strconv.Quote(first), strconv.Quote(second)))
		}
	}
}

// extended marks the OpenSSH extensions that move or copy files: a rename
// or a hard link names two paths; copy-data copies between two open
// handles, named by their paths when they are known.
func (t *sftpTracker) extended(b []byte) {
	name, rest, ok := sftpString(b)
	if !ok {
		return
	}
	switch name {
	case "posix-rename@openssh.com", "hardlink@openssh.com":
		from, rest, ok1 := sftpString(rest)
		to, _, ok2 := sftpString(rest)
		if ok1 && ok2 {
			verb := "rename"
			if name == "hardlink@openssh.com" {
				verb = "hardlink"
			}
			t.out = append(t.out, fmt.Sprintf("sftp %s %s to %s", verb, strconv.Quote(from), strconv.Quote(to)))
		}
	case "copy-data":
		from, rest, ok1 := sftpString(rest)
		if !ok1 || len(rest) < 16 {
			return
		}
		n := binary.BigEndian.Uint64(rest[8:])
		to, _, ok2 := sftpString(rest[16:])
		if ok2 {
			t.out = append(t.out, fmt.Sprintf("sftp copy-data from %s to %s (%d bytes asked, 0 for all)", t.handleName(from), t.handleName(to), n))
		}
	}
}

// handleName is the quoted path of an open handle, or "an unknown handle".
func (t *sftpTracker) handleName(h string) string {
	if f, ok := t.handles[h]; ok {
		return strconv.Quote(f.path)
	}
	return "an unknown handle"
}

// answer handles a target packet: it matches the request by id and counts
// or marks. Called with t.mu held.
func (t *sftpTracker) answer(typ byte, b []byte, body int) {
	if typ == sftpVersion || len(b) < 4 {
		return
	}
	id := binary.BigEndian.Uint32(b)
	q := t.pending[id]
	if len(q) == 0 {
		return
	}
	r := q[0]
	if len(q) == 1 {
		delete(t.pending, id)
	} else {
		t.pending[id] = q[1:]
	}
	t.npending--
	switch {
	case typ == sftpHandle && r.typ == sftpOpen && r.mode != "":
		if h, _, ok := sftpString(b[4:]); ok {
			t.opened(h, r)
		}
	case typ == sftpData && r.typ == sftpRead && len(b) >= 8:
		// The data must fit in the packet, as the client checks.
		if n := int64(binary.BigEndian.Uint32(b[4:])); t.handles[r.handle] != nil && n <= int64(body-8) {
			t.handles[r.handle].read += n
		}
	case typ == sftpStatus && r.typ == sftpWrite && len(b) >= 8 && binary.BigEndian.Uint32(b[4:]) == 0:
		if f := t.handles[r.handle]; f != nil {
			f.written += r.n
		}
	case typ == sftpStatus && r.typ == sftpClose:
		if f := t.handles[r.handle]; f != nil {
			t.out = append(t.out, f.markers("")...)
			delete(t.handles, r.handle)
		}
	}
}

// opened starts counting handle h of the OPEN request r.
func (t *sftpTracker) opened(h string, r sftpReq) {
	if old := t.handles[h]; old != nil {
		// The target reused a handle whose close we did not see.
		t.out = append(t.out, old.markers(" (handle reused)")...)
		delete(t.handles, h)
	}
	if len(t.handles) >= sftpMaxHandles {
		t.untracked++
		return
	}
	t.handles[h] = &sftpFile{path: r.path, mode: r.mode}
}

// markers are the byte-count markers of f: one per direction it was opened
// for or moved bytes in.
func (f *sftpFile) markers(suffix string) []string {
	var out []string
	q := strconv.Quote(f.path)
	if f.read > 0 || f.mode == "read" {
		out = append(out, fmt.Sprintf("sftp read %s %d bytes%s", q, f.read, suffix))
	}
	if f.written > 0 || f.mode != "read" {
		out = append(out, fmt.Sprintf("sftp write %s %d bytes%s", q, f.written, suffix))
	}
	return out
}

// end reports the handles never closed (the connection was cut, or the
// client left without closing) and what went uncounted; the tracker is
// empty afterwards.
func (t *sftpTracker) end() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	// By path, then handle: the order must not depend on map iteration.
	handles := slices.Collect(maps.Keys(t.handles))
	slices.SortFunc(handles, func(a, b string) int {
		return cmp.Or(cmp.Compare(t.handles[a].path, t.handles[b].path), cmp.Compare(a, b))
	})
	var out []string
	for _, h := range handles {
		out = append(out, t.handles[h].markers(" (not closed at session end)")...)
	}
	if t.untracked > 0 {
		out = append(out, fmt.Sprintf("sftp: %d requests or handles not counted (more than %d in flight or %d open)", t.untracked, sftpMaxPending, sftpMaxHandles))
	}
	clear(t.handles)
	clear(t.pending)
	t.npending, t.untracked = 0, 0
	return out
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

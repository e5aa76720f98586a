package bastion

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// sftpPkt builds an SFTP packet: type, request id, then fields (string,
// uint32, uint64 or raw []byte).
func sftpPkt(typ byte, id uint32, fields ...any) []byte {
	body := binary.BigEndian.AppendUint32([]byte{typ}, id)
	for _, f := range fields {
		switch v := f.(type) {
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case []byte:
			body = append(body, v...)
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// sftpStep is bytes one side sends.
type sftpStep struct {
	server bool
	data   []byte
}

func cl(pkts ...[]byte) sftpStep { return sftpStep{data: bytes.Join(pkts, nil)} }
func sv(pkts ...[]byte) sftpStep { return sftpStep{server: true, data: bytes.Join(pkts, nil)} }

var (
	sftpInitPkt    = []byte{0, 0, 0, 5, sftpInit, 0, 0, 0, 3}
	sftpVersionPkt = []byte{0, 0, 0, 5, sftpVersion, 0, 0, 0, 3}
)

func statusOK(id uint32) []byte   { return sftpPkt(sftpStatus, id, uint32(0), "", "") }
func statusFail(id uint32) []byte { return sftpPkt(sftpStatus, id, uint32(4), "failure", "") }
func write(id uint32, h string, off uint64, n int) []byte {
	return sftpPkt(sftpWrite, id, h, off, string(bytes.Repeat([]byte{'w'}, n)))
}
func data(id uint32, n int) []byte {
	return sftpPkt(sftpData, id, string(bytes.Repeat([]byte{'d'}, n)))
}
func openPkt(id uint32, path string, flags uint32) []byte {
	return sftpPkt(sftpOpen, id, path, flags, uint32(0))
}

// runSFTP feeds steps to a tracker, each step's bytes split in two at
// split (or at every chunk bytes when chunk > 0), and returns the markers
// and those of end.
func runSFTP(steps []sftpStep, split, chunk int) []string {
	t := newSFTPTracker()
	c, s := t.fromClient(), t.fromServer()
	var got []string
	for _, st := range steps {
		sc := c
		if st.server {
			sc = s
		}
		d := st.data
		if chunk > 0 {
			for i := 0; i < len(d); i += chunk {
				got = append(got, sc.feed(d[i:min(i+chunk, len(d))])...)
			}
			continue
		}
		k := min(split, len(d))
		got = append(got, sc.feed(d[:k])...)
		got = append(got, sc.feed(d[k:])...)
	}
	return append(got, t.end()...)
}

// TestSFTPTracker: the byte counts of each handle are marked at its close
// (or at the end), whatever the chunking of either stream: each step is
// split at every byte boundary, and fed byte by byte.
func TestSFTPTracker(t *testing.T) {
	tests := []struct {
		name  string
		steps []sftpStep
		want  []string
	}{
		{
			name: "upload",
			steps: []sftpStep{
				cl(sftpInitPkt), sv(sftpVersionPkt),
				cl(openPkt(1, "/tmp/up", 0x1a)), sv(sftpPkt(sftpHandle, 1, "h0")),
				cl(write(2, "h0", 0, 300), write(3, "h0", 300, 300), write(4, "h0", 600, 7)),
				sv(statusOK(2), statusOK(3), statusOK(4)),
				cl(sftpPkt(sftpClose, 5, "h0")), sv(statusOK(5)),
			},
			want: []string{`sftp open "/tmp/up" (write)`, `sftp write "/tmp/up" 607 bytes`},
		},
		{
			name: "download in flight, eof",
			steps: []sftpStep{
				cl(openPkt(1, "/etc/hosts", 1)), sv(sftpPkt(sftpHandle, 1, "\x00\x00\x00\x07")),
				cl(sftpPkt(sftpRead, 2, "\x00\x00\x00\x07", uint64(0), uint32(256)), sftpPkt(sftpRead, 3, "\x00\x00\x00\x07", uint64(256), uint32(256))),
				sv(data(2, 256), data(3, 9)),
				cl(sftpPkt(sftpRead, 4, "\x00\x00\x00\x07", uint64(265), uint32(256))), sv(sftpPkt(sftpStatus, 4, uint32(1), "EOF", "")),
				cl(sftpPkt(sftpClose, 5, "\x00\x00\x00\x07")), sv(statusOK(5)),
			},
			want: []string{`sftp open "/etc/hosts" (read)`, `sftp read "/etc/hosts" 265 bytes`},
		},
		{
			name: "failed write and write to unknown handle not counted",
			steps: []sftpStep{
				cl(openPkt(1, "/full", 0x1a)), sv(sftpPkt(sftpHandle, 1, "h")),
				cl(write(2, "h", 0, 50), write(3, "h", 50, 20), write(4, "nope", 0, 99)),
				sv(statusOK(2), statusFail(3), statusOK(4)),
				cl(sftpPkt(sftpClose, 5, "h")), sv(statusFail(5)),
			},
			want: []string{`sftp open "/full" (write)`, `sftp write "/full" 50 bytes`},
		},
		{
			name: "reused request ids answered in order",
			steps: []sftpStep{
				cl(openPkt(7, "/a", 1)), sv(sftpPkt(sftpHandle, 7, "h")),
				cl(sftpPkt(17, 7, "/a"), sftpPkt(sftpRead, 7, "h", uint64(0), uint32(64))), // STAT then READ, same id
				sv(sftpPkt(105, 7, uint32(0)), data(7, 64)),
				cl(sftpPkt(sftpClose, 7, "h")), sv(statusOK(7)),
			},
			want: []string{`sftp open "/a" (read)`, `sftp read "/a" 64 bytes`},
		},
		{
			name: "lengths that do not fit their packet not counted",
			steps: []sftpStep{
				cl(openPkt(1, "/f", 0x3)), sv(sftpPkt(sftpHandle, 1, "h")),
				cl(sftpPkt(sftpWrite, 2, "h", uint64(0), uint32(1<<30), "tiny"), sftpPkt(sftpRead, 3, "h", uint64(0), uint32(64))),
				sv(statusOK(2), sftpPkt(sftpData, 3, uint32(1<<30), "tiny")),
				cl(sftpPkt(sftpClose, 4, "h")), sv(statusOK(4)),
			},
			want: []string{`sftp open "/f" (read-write)`, `sftp write "/f" 0 bytes`},
		},
		{
			name: "failed open, rename, remove, mkdir",
			steps: []sftpStep{
				cl(openPkt(1, "/nope", 1)), sv(statusFail(1)),
				cl(sftpPkt(sftpRename, 2, "/t/a", "/t/b"), sftpPkt(sftpRemove, 3, "/t/b"), sftpPkt(sftpMkdir, 4, "/t/d", uint32(0))),
				sv(statusOK(2), statusOK(3), statusOK(4)),
			},
			want: []string{`sftp open "/nope" (read)`, `sftp rename "/t/a" to "/t/b"`, `sftp remove "/t/b"`, `sftp mkdir "/t/d"`},
		},
		{
			name: "OpenSSH extensions: posix-rename, hardlink, copy-data",
			steps: []sftpStep{
				cl(openPkt(1, "/src", 1), openPkt(2, "/dst", 0x1a)), sv(sftpPkt(sftpHandle, 1, "hs"), sftpPkt(sftpHandle, 2, "hd")),
				cl(sftpPkt(sftpExtended, 3, "posix-rename@openssh.com", "/t/a", "/t/b"),
					sftpPkt(sftpExtended, 4, "hardlink@openssh.com", "/t/b", "/t/c"),
					sftpPkt(sftpExtended, 5, "copy-data", "hs", uint64(0), uint64(0), "hd", uint64(0)),
					sftpPkt(sftpExtended, 6, "statvfs@openssh.com", "/")),
				sv(statusOK(3), statusOK(4), statusOK(5), statusOK(6)),
				cl(sftpPkt(sftpClose, 7, "hs"), sftpPkt(sftpClose, 8, "hd")), sv(statusOK(7), statusOK(8)),
			},
			want: []string{`sftp open "/src" (read)`, `sftp open "/dst" (write)`, `sftp rename "/t/a" to "/t/b"`, `sftp hardlink "/t/b" to "/t/c"`,
				`sftp copy-data from "/src" to "/dst" (0 bytes asked, 0 for all)`, `sftp read "/src" 0 bytes`, `sftp write "/dst" 0 bytes`},
		},
		{
			name: "connection cut before close",
			steps: []sftpStep{
				cl(openPkt(1, "/big", 0x1a), openPkt(2, "/rw", 0x3)), sv(sftpPkt(sftpHandle, 1, "h1"), sftpPkt(sftpHandle, 2, "h2")),
				cl(write(3, "h1", 0, 1000), write(4, "h1", 1000, 24)), sv(statusOK(3)),
				cl(sftpPkt(sftpClose, 5, "h2")), // never answered
			},
			want: []string{`sftp open "/big" (write)`, `sftp open "/rw" (read-write)`,
				`sftp write "/big" 1000 bytes (not closed at session end)`, `sftp write "/rw" 0 bytes (not closed at session end)`},
		},
		{
			name: "handle reused without a close seen",
			steps: []sftpStep{
				cl(openPkt(1, "/one", 1), openPkt(2, "/two", 1)), sv(sftpPkt(sftpHandle, 1, "h"), sftpPkt(sftpHandle, 2, "h")),
			},
			want: []string{`sftp open "/one" (read)`, `sftp open "/two" (read)`, `sftp read "/one" 0 bytes (handle reused)`,
				`sftp read "/two" 0 bytes (not closed at session end)`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			longest := 0
			for _, st := range tc.steps {
				longest = max(longest, len(st.data))
			}
			for split := 0; split <= longest; split++ {
				if got := runSFTP(tc.steps, split, 0); !slices.Equal(got, tc.want) {
					t.Fatalf("split at %d: got\n%q\nwant\n%q", split, got, tc.want)
				}
			}
			if got := runSFTP(tc.steps, 0, 1); !slices.Equal(got, tc.want) {
				t.Fatalf("byte by byte: got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestSFTPTrackerBounds: a client that opens more handles, or sends more
// unanswered requests, than the tables hold is counted as overflow.
func TestSFTPTrackerBounds(t *testing.T) {
	tests := []struct {
		name  string
		steps func() []sftpStep
		want  string
	}{
		{
			name: "too many handles",
			steps: func() []sftpStep {
				var st []sftpStep
				for i := range uint32(sftpMaxHandles + 5) {
					st = append(st, cl(openPkt(i, "/f", 1)), sv(sftpPkt(sftpHandle, i, fmt.Sprint(i))))
				}
				return st
			},
			want: fmt.Sprintf("sftp: 5 requests or handles not counted (more than %d in flight or %d open)", sftpMaxPending, sftpMaxHandles),
		},
		{
			name: "too many requests in flight",
			steps: func() []sftpStep {
				var st []sftpStep
				for i := range uint32(sftpMaxPending + 3) {
					st = append(st, cl(sftpPkt(17, i, "/x")))
				}
				return st
			},
			want: fmt.Sprintf("sftp: 3 requests or handles not counted (more than %d in flight or %d open)", sftpMaxPending, sftpMaxHandles),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runSFTP(tc.steps(), 1<<30, 0)
			if len(got) == 0 || got[len(got)-1] != tc.want {
				t.Fatalf("last marker %q, want %q", got[len(got)-1:], tc.want)
			}
		})
	}
}

// FuzzSFTPTracker: any client and target streams, in any chunking, give
// the same markers as fed whole, every marker starts with "sftp ", and the
// tables and buffers stay within their bounds.
func FuzzSFTPTracker(f *testing.F) {
	f.Add(openPkt(1, "/x", 2), sftpPkt(sftpHandle, 1, "h"), 2)
	f.Add(append(openPkt(1, "/x", 2), write(2, "h", 0, 10)...), append(sftpPkt(sftpHandle, 1, "h"), statusOK(2)...), 3)
	f.Add(sftpPkt(sftpRename, 1, "/a", "/b"), []byte(nil), 1)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 3}, []byte{0, 0, 0, 0, 0}, 5)
	f.Add(sftpPkt(sftpWrite, 1, "h", uint64(0), uint32(0xffffffff)), statusOK(1), 7)
	f.Fuzz(func(t *testing.T, client, server []byte, chunk int) {
		chunk = chunk%97 + 1
		if chunk < 1 {
			chunk = -chunk + 1
		}
		steps := []sftpStep{{data: client}, {server: true, data: server}}
		whole := runSFTP(steps, 1<<30, 0)
		if got := runSFTP(steps, 0, chunk); !slices.Equal(got, whole) {
			t.Fatalf("chunks of %d: %q, whole: %q", chunk, got, whole)
		}
		for _, m := range whole {
			if !strings.HasPrefix(m, "sftp ") && !strings.HasPrefix(m, "sftp: ") {
				t.Fatalf("marker %q", m)
			}
		}
		tr := newSFTPTracker()
		tr.fromClient().feed(client)
		tr.fromServer().feed(server)
		if tr.npending > sftpMaxPending || len(tr.handles) > sftpMaxHandles ||
			cap(tr.client.pkt) > 2*sftpMaxNamed || cap(tr.server.pkt) > 2*sftpMaxNamed {
			t.Fatalf("bounds: %d pending, %d handles, buffers %d/%d", tr.npending, len(tr.handles), cap(tr.client.pkt), cap(tr.server.pkt))
		}
	})
}

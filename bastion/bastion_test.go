package bastion

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/sessionlog"
)

// TestMain fails the package if any goroutine outlives the tests: every
// test closes its Server in Cleanup, so leftovers are leaks of Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestShellAndExecSessions(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name       string
		user       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
		wantRec    []string // substrings of the recorded output
		wantMarker string
		wantCmd    string
	}{
		{
			name:       "shell through a pty",
			user:       e.login + "@db1",
			args:       []string{"-tt"},
			stdin:      "echo shell-$((6*7))\nexit 3\n",
			wantCode:   3,
			wantStdout: "shell-42",
			wantRec:    []string{"shell-42"},
			wantMarker: "exit-status 3",
			wantCmd:    "shell",
		},
		{
			name:       "exec without pty, login:host form",
			user:       e.login + ":db1",
			args:       []string{"echo out-$((6*7)); echo err-$((6*7)) >&2; exit 3"},
			wantCode:   3,
			wantStdout: "out-42\n",
			wantStderr: "err-42",
			wantRec:    []string{"out-42", "err-42"},
			wantMarker: "exit-status 3",
			wantCmd:    "exec echo out-",
		},
		{
			name:       "exec with pty",
			user:       e.login + "@db1",
			args:       []string{"-tt", "echo tty-$((6*7)); tty >/dev/null && echo has-tty"},
			wantCode:   0,
			wantStdout: "has-tty",
			wantRec:    []string{"tty-42", "has-tty"},
			wantMarker: "exit-status 0",
			wantCmd:    "exec echo tty-",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, _, _ := e.userCert(t, certSpec{name: "k" + strconv.Itoa(i), principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
			stdout, stderr, code := run(t, e.ssh(key, tc.user, tc.args...), tc.stdin)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s\ntarget log:\n%s", code, tc.wantCode, stderr, e.target.Log())
			}
			if !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tc.wantStdout)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantStderr)
			}
			ended := e.backend.waitEnded(t, i+1)
			rec := ended[i]
			if rec.ExitStatus != tc.wantCode || rec.User != "alice" || rec.Host != "db1" || rec.Login != e.login || rec.TargetSerial == 0 || rec.BytesOut == 0 {
				t.Errorf("session record %+v", rec)
			}
			if !strings.HasPrefix(rec.Command, tc.wantCmd) {
				t.Errorf("session command %q, want prefix %q", rec.Command, tc.wantCmd)
			}
			r := readRecording(t, rec)
			if want := e.login + "@db1 by alice"; r.Header.Title != want || r.Header.SessionID != rec.ID {
				t.Errorf("recording header %+v, want title %q and id %q", r.Header, want, rec.ID)
			}
			out := eventText(r, sessionlog.CodeOutput)
			for _, w := range tc.wantRec {
				if !strings.Contains(out, w) {
					t.Errorf("recording output does not contain %q:\n%s", w, out)
				}
			}
			if m := eventText(r, sessionlog.CodeMarker); !strings.Contains(m, tc.wantMarker) {
				t.Errorf("recording markers %q lack %q", m, tc.wantMarker)
			}
			if in := eventText(r, sessionlog.CodeInput); in != "" {
				t.Errorf("input recorded without RecordInput: %q", in)
			}
			e.backend.mu.Lock()
			indexed := e.backend.index[rec.ID]
			e.backend.mu.Unlock()
			var all strings.Builder
			for _, l := range indexed {
				all.WriteString(l.Text + "\n")
			}
			if !strings.Contains(all.String(), tc.wantRec[0]) {
				t.Errorf("IndexText did not receive %q: %q", tc.wantRec[0], all.String())
			}
		})
	}
	if n := len(e.srv.LiveSessions()); n != 0 {
		t.Errorf("%d live sessions after all ended", n)
	}
}

func TestFileTransfers(t *testing.T) {
	sshdtest.Require(t, "scp", "sftp")
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	src := filepath.Join(e.dir, "payload.bin")
	data := make([]byte, 300*1024+7)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	remoteDir := t.TempDir() // the target is this machine
	port := strconv.Itoa(e.port)
	user := "User=" + e.login + ":db1"
	tests := []struct {
		name       string
		bin        string
		args       []string
		stdin      string
		result     string // local or remote path that must hold the payload
		wantMarker string
		wantCount  string // the byte-count marker, exact (sftp only)
		wantIn     bool   // bytes flow client -> target
	}{
		{
			name:       "scp legacy protocol upload",
			bin:        "scp",
			args:       []string{"-O", "-P", port, "-o", user, src, "127.0.0.1:" + filepath.Join(remoteDir, "scp-O.bin")},
			result:     filepath.Join(remoteDir, "scp-O.bin"),
			wantMarker: "scp file payload.bin (307207 bytes",
			wantIn:     true,
		},
		{
			name:       "scp legacy protocol download",
			bin:        "scp",
			args:       []string{"-O", "-P", port, "-o", user, "127.0.0.1:" + src, filepath.Join(remoteDir, "scp-down.bin")},
			result:     filepath.Join(remoteDir, "scp-down.bin"),
			wantMarker: "scp file payload.bin (307207 bytes",
		},
		{
			name:       "scp over sftp upload",
			bin:        "scp",
			args:       []string{"-P", port, "-o", user, src, "127.0.0.1:" + filepath.Join(remoteDir, "scp-s.bin")},
			result:     filepath.Join(remoteDir, "scp-s.bin"),
			wantMarker: "sftp open \"" + filepath.Join(remoteDir, "scp-s.bin") + "\" (write)",
			wantCount:  "sftp write \"" + filepath.Join(remoteDir, "scp-s.bin") + "\" 307207 bytes",
			wantIn:     true,
		},
		{
			name:       "scp over sftp download",
			bin:        "scp",
			args:       []string{"-P", port, "-o", user, "127.0.0.1:" + src, filepath.Join(remoteDir, "scp-s-down.bin")},
			result:     filepath.Join(remoteDir, "scp-s-down.bin"),
			wantMarker: "sftp open \"" + src + "\" (read)",
			wantCount:  "sftp read \"" + src + "\" 307207 bytes",
		},
		{
			name:       "sftp batch upload",
			bin:        "sftp",
			args:       []string{"-b", "-", "-P", port, "-o", user, "127.0.0.1"},
			stdin:      "put " + src + " " + filepath.Join(remoteDir, "sftp-up.bin") + "\n",
			result:     filepath.Join(remoteDir, "sftp-up.bin"),
			wantMarker: "sftp open \"" + filepath.Join(remoteDir, "sftp-up.bin") + "\" (write)",
			wantCount:  "sftp write \"" + filepath.Join(remoteDir, "sftp-up.bin") + "\" 307207 bytes",
			wantIn:     true,
		},
		{
			name:       "sftp batch download",
			bin:        "sftp",
			args:       []string{"-b", "-", "-P", port, "-o", user, "127.0.0.1"},
			stdin:      "get " + src + " " + filepath.Join(remoteDir, "sftp.bin") + "\n",
			result:     filepath.Join(remoteDir, "sftp.bin"),
			wantMarker: "sftp open \"" + src + "\" (read)",
			wantCount:  "sftp read \"" + src + "\" 307207 bytes",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(e.sshArgs(key), tc.args...)
			stdout, stderr, code := run(t, exec.Command(sshdtest.Path(tc.bin), args...), tc.stdin)
			if code != 0 {
				t.Fatalf("%s exit %d\nstdout:\n%s\nstderr:\n%s", tc.bin, code, stdout, stderr)
			}
			got, err := os.ReadFile(tc.result)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != want {
				t.Fatalf("%s: transferred file differs (%d bytes, want %d)", tc.result, len(got), len(data))
			}
			ended := e.backend.waitEnded(t, i+1)
			rec := ended[i]
			moved := rec.BytesOut
			if tc.wantIn {
				moved = rec.BytesIn
			}
			if moved < int64(len(data)) {
				t.Errorf("session record counts in=%d out=%d, want >= %d in the transfer direction", rec.BytesIn, rec.BytesOut, len(data))
			}
			r := readRecording(t, rec)
			m := eventText(r, sessionlog.CodeMarker)
			if !strings.Contains(m, tc.wantMarker) {
				t.Errorf("markers lack %q:\n%s", tc.wantMarker, m)
			}
			if tc.wantCount != "" && !slices.Contains(strings.Split(m, "\n"), tc.wantCount) {
				t.Errorf("markers lack the byte count %q:\n%s", tc.wantCount, m)
			}
			if out := eventText(r, sessionlog.CodeOutput); len(out) > 1024 {
				t.Errorf("binary transfer recorded as %d bytes of output", len(out))
			}
		})
	}
}

// TestBinaryOutputRecorded: output that is not text reaches the client
// unchanged and is recorded byte for byte as binary events (about 4/3 of
// its size, not six times), and none of it goes to the search index.
func TestBinaryOutputRecorded(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name string
		args []string
		size int
	}{
		{name: "exec", args: []string{"head -c 300000 /dev/zero"}, size: 300000},
		{name: "exec with pty", args: []string{"-tt", "stty raw -echo; head -c 200000 /dev/zero"}, size: 200000},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, _, _ := e.userCert(t, certSpec{name: "b" + strconv.Itoa(i), principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
			stdout, stderr, code := run(t, e.ssh(key, e.login+"@db1", tc.args...), "")
			if code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
			}
			if stdout != strings.Repeat("\x00", tc.size) {
				t.Fatalf("client got %d bytes, want %d zeros", len(stdout), tc.size)
			}
			rec := e.backend.waitEnded(t, i+1)[i]
			r := readRecording(t, rec)
			var got bytes.Buffer
			for _, ev := range r.Events {
				switch ev.Code {
				case sessionlog.CodeOutput, sessionlog.CodeBinaryOutput:
					p, err := ev.Bytes()
					if err != nil {
						t.Fatal(err)
					}
					got.Write(p)
				}
			}
			if got.String() != stdout {
				t.Errorf("recording holds %d bytes of output, want the %d the client got", got.Len(), len(stdout))
			}
			if rec.RecordingSize > int64(tc.size)*3/2 {
				t.Errorf("recording of %d bytes for %d bytes of binary output", rec.RecordingSize, tc.size)
			}
			e.backend.mu.Lock()
			indexed := e.backend.index[rec.ID]
			e.backend.mu.Unlock()
			for _, l := range indexed {
				if l.Kind == sessionlog.CodeOutput {
					t.Errorf("binary output indexed as %q", l.Text)
				}
			}
		})
	}
}

func TestClientKilledFinalisesRecording(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true, recordInput: true})
	cmd := e.ssh(key, e.login+"@db1", "-tt")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "echo before-$((6*7))\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !e.indexed("before-42") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("output never reached the index")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if live := e.srv.LiveSessions(); len(live) != 1 || live[0].User != "alice" {
		t.Errorf("LiveSessions = %+v, want one session of alice", live)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	rec := e.backend.waitEnded(t, 1)[0]
	r := readRecording(t, rec)
	if !strings.Contains(eventText(r, sessionlog.CodeOutput), "before-42") {
		t.Errorf("recording lacks output")
	}
	if !strings.Contains(eventText(r, sessionlog.CodeInput), "echo before") {
		t.Errorf("recording lacks input though RecordInput is set")
	}
}

// indexed reports whether any IndexText line contains s.
func (e *env) indexed(s string) bool {
	e.backend.mu.Lock()
	defer e.backend.mu.Unlock()
	for _, lines := range e.backend.index {
		for _, l := range lines {
			if strings.Contains(l.Text, s) {
				return true
			}
		}
	}
	return false
}

func TestRecordOrRefuse(t *testing.T) {
	base := t.TempDir()
	notDir := filepath.Join(base, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(base, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		dir        string
		rootSkip   bool
		failOpen   bool
		auditDown  bool
		wantRun    bool
		wantStderr string
		wantAudit  string
	}{
		{name: "read-only recording directory", dir: readOnly, rootSkip: true, wantStderr: "recording unavailable", wantAudit: "recording unavailable"},
		{name: "recording directory is a file", dir: notDir, wantStderr: "recording unavailable", wantAudit: "recording unavailable"},
		{name: "fail open runs unrecorded", dir: notDir, failOpen: true, wantRun: true, wantAudit: "recording unavailable"},
		{name: "session start not audited", auditDown: true, wantStderr: "audit unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootSkip && os.Geteuid() == 0 {
				t.Skip("root ignores directory permissions")
			}
			e := newEnv(t, envOptions{recordingDir: tc.dir, failOpen: tc.failOpen})
			e.backend.failStart = tc.auditDown
			key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
			stdout, stderr, code := run(t, e.ssh(key, e.login+"@db1", "echo ran"), "")
			if ran := code == 0 && strings.Contains(stdout, "ran"); ran != tc.wantRun || !strings.Contains(stderr, tc.wantStderr) {
				t.Fatalf("exit %d stdout %q stderr %q; want run=%t and stderr %q", code, stdout, stderr, tc.wantRun, tc.wantStderr)
			}
			started, _, rejected := e.backend.snapshot()
			if (len(started) != 0) != tc.wantRun {
				t.Errorf("sessions started: %+v", started)
			}
			if tc.wantAudit != "" && !containsAny(rejected, tc.wantAudit) {
				t.Errorf("refusal not audited: %q", rejected)
			}
			if tc.auditDown {
				if files, _ := filepath.Glob(filepath.Join(e.recDir, "*", "*", "*", "*.cast*")); len(files) != 0 {
					t.Errorf("recording of a refused session left behind: %q", files)
				}
			}
		})
	}
}

func TestCloseEndsLiveSessions(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	cmd := e.ssh(key, e.login+"@db1", "-tt", "echo up-$((6*7)); sleep 30")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	testkit.WaitFor(t, 10*time.Second, "the session's output", func() bool { return e.indexed("up-42") })
	if err := e.srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returns only after SessionEnded.
	_, ended, _ := e.backend.snapshot()
	if len(ended) != 1 || ended[0].EndReason != "bastion shutting down" {
		t.Fatalf("ended sessions after Close: %+v", ended)
	}
	readRecording(t, ended[0])
	if live := e.srv.LiveSessions(); len(live) != 0 {
		t.Errorf("LiveSessions after Close: %+v", live)
	}
}

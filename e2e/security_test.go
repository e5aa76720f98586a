package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/sessionlog"
)

// needleCommand writes coloured output, an OSC 52 clipboard write and a
// title change (which must never reach a viewer's terminal), then two more
// lines after pauses, so that offsets are distinct.
const needleCommand = `printf '\033[1;31mdisk-needle\033[0m\n'; printf '\033]52;c;c2VjcmV0\007\033]0;evil-title\007'; echo first-part; sleep 2; echo second-needle; sleep 1; echo end-part`

// TestIssue5SecurityTools is the acceptance test of issue 5 through the
// binaries, on sessions recorded by jitd's bastion from real sshd targets:
// list filters, show with the grant and its approver, full-text search with
// offsets and replay from a hit, the player driven in a terminal, export
// played by asciinema, transcripts, audited access for auditors only,
// audit list --follow, and verify catching tampered recordings.
func TestIssue5SecurityTools(t *testing.T) {
	t.Parallel()
	w := newSecWorld(t)
	alice, bob, auditor, login := w.alice, w.bob, w.auditor, w.login

	// S1: alice on db1, exec.
	if r := start(t, alice, "ssh", login+"@db1", "--reason", "look at the disks", "--", needleCommand).wait(t, commandTimeout); r.Code != 0 {
		t.Fatalf("jit ssh of the needle session: %v", r)
	}
	s1 := secSessionWith(t, auditor, "disk-needle", sessionWait)
	between := time.Now().UTC()
	time.Sleep(50 * time.Millisecond) // S2 starts strictly after between

	// S2: bob on db2, approved by carol, an interactive shell whose
	// commands he types on a terminal.
	const reason = "rotate the replica logs"
	id := strings.TrimSpace(mustRun(t, bob, "request", "db2", "--login", login, "--reason", reason, "--no-wait"))
	mustRun(t, w.carol, "approve", id, "--reason", "fine by me")
	mustRun(t, bob, "wait", id)
	r := secRunStdin(t, bob, "echo typed-needle-$((6*7))\nexit 4\n", "ssh", "-t", login+"@db2")
	if r.Code != 4 || !strings.Contains(r.Stdout, "typed-needle-42") {
		t.Fatalf("typed shell session through jit ssh -t: %v; want exit 4 and the command's output", r)
	}
	var s2 api.Session
	testkit.WaitFor(t, sessionWait, "bob's shell session to end", func() bool {
		for _, s := range secSessions(t, auditor, "--user", "bob") {
			if s.EndedAt != nil {
				s2 = s
				return true
			}
		}
		return false
	})

	t.Run("list filters", func(t *testing.T) {
		ids := func(ss []api.Session) []string {
			var out []string
			for _, s := range ss {
				out = append(out, s.ID)
			}
			return out
		}
		for _, tt := range []struct {
			name      string
			args      []string
			want, not []string
		}{
			{name: "user", args: []string{"--user", "bob"}, want: []string{s2.ID}, not: []string{s1.ID}},
			{name: "host", args: []string{"--host", "db1"}, want: []string{s1.ID}, not: []string{s2.ID}},
			{name: "since", args: []string{"--since", between.Format(time.RFC3339Nano)}, want: []string{s2.ID}, not: []string{s1.ID}},
			{name: "until", args: []string{"--until", between.Format(time.RFC3339Nano)}, want: []string{s1.ID}, not: []string{s2.ID}},
			{name: "since as a duration", args: []string{"--since", "1h"}, want: []string{s1.ID, s2.ID}},
		} {
			got := ids(secSessions(t, auditor, tt.args...))
			for _, id := range tt.want {
				if !slices.Contains(got, id) {
					t.Errorf("%s: jit sessions list %v = %v lacks %s", tt.name, tt.args, got, id)
				}
			}
			for _, id := range tt.not {
				if slices.Contains(got, id) {
					t.Errorf("%s: jit sessions list %v = %v includes %s", tt.name, tt.args, got, id)
				}
			}
		}
		// An engineer sees only their own sessions.
		if got := ids(secSessions(t, alice)); slices.Contains(got, s2.ID) || !slices.Contains(got, s1.ID) {
			t.Errorf("alice's jit sessions list = %v, want her %s and not bob's %s", got, s1.ID, s2.ID)
		}
	})

	t.Run("show", func(t *testing.T) {
		var d api.SessionDetail
		if err := json.Unmarshal([]byte(mustRun(t, auditor, "sessions", "show", s2.ID, "--format", "json")), &d); err != nil {
			t.Fatalf("jit sessions show --format json: %v", err)
		}
		if d.Request == nil || d.Request.ID != id || d.Request.Reason != reason || len(d.Request.Approvals) != 1 || d.Request.Approvals[0].Approver != "carol" {
			t.Fatalf("session %s detail request %+v, want request %s with reason %q approved by carol", s2.ID, d.Request, id, reason)
		}
		text := mustRun(t, auditor, "sessions", "show", s2.ID)
		s := d.Session
		for _, want := range []string{
			s2.ID, id, reason, "carol", "fine by me",
			"user cert " + strconv.FormatUint(s.Serial, 10), "target cert " + strconv.FormatUint(s.TargetSerial, 10),
			"started", "ended", "exit status 4", strconv.FormatInt(s.BytesOut, 10) + " out", s.RecordingSHA256,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("jit sessions show %s lacks %q:\n%s", s2.ID, want, text)
			}
		}
		if s.Serial == 0 || s.TargetSerial == 0 || s.BytesOut == 0 || len(s.RecordingSHA256) != 64 || s.EndedAt == nil {
			t.Errorf("session detail %+v lacks serials, bytes, digest or end", s)
		}
	})

	var hitOffset float64
	t.Run("search", func(t *testing.T) {
		for _, tt := range []struct {
			name, query, session, kind, snippet string
		}{
			{name: "typed command", query: "typed-needle", session: s2.ID, kind: sessionlog.CodeOutput, snippet: "echo typed-needle"},
			{name: "exec command line", query: "disk-needle", session: s1.ID, kind: sessionlog.CodeMarker, snippet: "exec printf"},
			{name: "coloured output", query: "disk-needle", session: s1.ID, kind: sessionlog.CodeOutput, snippet: "disk-needle"},
			{name: "later output", query: "second-needle", session: s1.ID, kind: sessionlog.CodeOutput, snippet: "second-needle"},
		} {
			hits := secSearch(t, auditor, tt.query)
			var found *api.SearchHit
			for i, h := range hits {
				if strings.ContainsRune(h.Snippet, '\x1b') {
					t.Errorf("%s: snippet %q holds an escape sequence", tt.name, h.Snippet)
				}
				if h.SessionID == tt.session && h.Kind == tt.kind && strings.Contains(h.Snippet, tt.snippet) && found == nil {
					found = &hits[i]
				}
			}
			if found == nil {
				t.Errorf("%s: jit sessions search %q = %+v, want a %s hit in %s with %q", tt.name, tt.query, hits, tt.kind, tt.session, tt.snippet)
				continue
			}
			if tt.query == "second-needle" {
				hitOffset = found.Offset
				if hitOffset < 1.5 {
					t.Errorf("second-needle hit at %vs, want after the 2 s pause", hitOffset)
				}
			}
		}
		text := mustRun(t, auditor, "sessions", "search", "second-needle")
		if !strings.Contains(text, s1.ID) || !strings.Contains(text, "at "+strconv.FormatFloat(hitOffset, 'f', 1, 64)+"s") {
			t.Errorf("jit sessions search text output lacks the session and offset %v:\n%s", hitOffset, text)
		}
	})

	t.Run("replay in a terminal", func(t *testing.T) {
		screen, code := secStartPTY(t, auditor, "replay", s1.ID, "--speed", "8", "--idle-limit", "0.2s").wait(t, 30*time.Second)
		if code != 0 {
			t.Fatalf("jit replay exit %d; screen:\n%q", code, screen)
		}
		for _, want := range []string{"disk-needle", "first-part", "second-needle", "end-part"} {
			if !strings.Contains(screen, want) {
				t.Errorf("replay screen lacks %q:\n%q", want, screen)
			}
		}
		for _, bad := range []string{"\x1b]52", "evil-title", "c2VjcmV0"} {
			if strings.Contains(screen, bad) {
				t.Errorf("replay passed %q to the viewer's terminal:\n%q", bad, screen)
			}
		}
		raw, code := secStartPTY(t, auditor, "replay", s1.ID, "--speed", "8", "--idle-limit", "0.2s", "--raw").wait(t, 30*time.Second)
		if code != 0 || !strings.Contains(raw, "\x1b]52;c;c2VjcmV0\a") || !strings.Contains(raw, "\x1b]0;evil-title\a") {
			t.Errorf("jit replay --raw: exit %d, want the recorded sequences untouched; screen:\n%q", code, raw)
		}
	})

	t.Run("q quits early", func(t *testing.T) {
		// Real pauses (no idle limit): the 2 s pause after first-part
		// leaves time to press q before second-needle is shown.
		p := secStartPTY(t, auditor, "replay", s1.ID, "--idle-limit", "0")
		testkit.WaitFor(t, 10*time.Second, "first-part on the replay screen", func() bool {
			return strings.Contains(p.screen.String(), "first-part")
		})
		if _, err := p.tty.Write([]byte("q")); err != nil {
			t.Fatalf("press q: %v", err)
		}
		screen, code := p.wait(t, 5*time.Second)
		if code != 0 || strings.Contains(screen, "end-part") {
			t.Errorf("after q: exit %d, screen %q; want exit 0 before the end of the recording", code, screen)
		}
	})

	t.Run("replay from a search hit", func(t *testing.T) {
		at := strconv.FormatFloat(hitOffset, 'f', -1, 64)
		screen, code := secStartPTY(t, auditor, "replay", s1.ID, "--at", at, "--idle-limit", "0").wait(t, 30*time.Second)
		if code != 0 || !strings.Contains(screen, "second-needle") {
			t.Fatalf("jit replay --at %s: exit %d, screen %q", at, code, screen)
		}
		// The status line is drawn after every write: the first one shows
		// where playback started.
		m := regexp.MustCompile(`\[(?:playing|paused) ([0-9hms.]+)/`).FindStringSubmatch(screen)
		if m == nil {
			t.Fatalf("no status line on the replay screen: %q", screen)
		}
		pos, err := time.ParseDuration(m[1])
		if err != nil || pos.Seconds() < hitOffset-0.5 {
			t.Errorf("replay --at %s started at %q, want the hit's offset", at, m[1])
		}
	})

	dir := t.TempDir()
	t.Run("export", func(t *testing.T) {
		asciinema := secRequire(t, "asciinema", "asciinema")
		cast := filepath.Join(dir, "s1.cast")
		mustRun(t, auditor, "sessions", "export", s1.ID, "-o", cast)
		f, err := os.Open(cast)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := sessionlog.ReadAll(f)
		f.Close()
		if err != nil || rec.Truncated {
			t.Fatalf("read exported %s: %v (truncated %v)", cast, err, rec != nil && rec.Truncated)
		}
		var stream strings.Builder
		for _, e := range rec.Events {
			if e.Code == sessionlog.CodeOutput {
				stream.WriteString(e.Data)
			}
		}
		out, err := secAsciinema(t, asciinema, "cat", cast)
		if err != nil || out != stream.String() {
			t.Errorf("asciinema cat %s: %v\n%q\nwant the output stream\n%q", cast, err, out, stream.String())
		}
		if out, err := secAsciinema(t, asciinema, "play", "-s", "8", "-i", "0.2", cast); err != nil || !strings.Contains(out, "second-needle") {
			t.Errorf("asciinema play %s: %v\n%q", cast, err, out)
		}

		text := mustRun(t, auditor, "sessions", "export", s1.ID, "--format", "text")
		if strings.ContainsAny(text, "\x1b\a") {
			t.Errorf("text transcript holds escape sequences:\n%q", text)
		}
		for _, want := range []string{"disk-needle", "first-part", "second-needle", "end-part"} {
			if !regexp.MustCompile(`(?m)^\[\d\d:\d\d:\d\d\.\d{3}\] ` + want + `$`).MatchString(text) {
				t.Errorf("text transcript lacks a timestamped line %q:\n%s", want, text)
			}
		}
	})

	t.Run("watch an ended session", func(t *testing.T) {
		if out := mustRun(t, auditor, "sessions", "watch", s1.ID); !strings.Contains(out, "end-part") || strings.Contains(out, "\x1b]52") {
			t.Errorf("jit sessions watch of an ended session: %q", out)
		}
	})

	t.Run("auditors only, and audited", func(t *testing.T) {
		for _, args := range [][]string{
			{"replay", s1.ID},
			{"sessions", "export", s1.ID, "-o", filepath.Join(dir, "alice.cast")},
			{"sessions", "watch", s1.ID},
			{"sessions", "search", "disk-needle"},
			{"sessions", "show", s2.ID},
		} {
			if _, stderr, code := run(t, alice, args...); code != 3 || !strings.Contains(stderr, "not_auditor") {
				t.Errorf("alice: jit %v: exit %d, stderr %q; want 3 and not_auditor", args, code, stderr)
			}
		}
		if exists(filepath.Join(dir, "alice.cast")) {
			t.Error("a refused export left a file")
		}
		denied := 0
		for _, ev := range secEvents(t, auditor, "--event", "access.denied", "--user", "alice") {
			if ev.Code == "not_auditor" && ev.Actor == "alice" {
				denied++
			}
		}
		if denied < 4 {
			t.Errorf("%d access.denied events for alice's refused replay, export, watch and search; want 4", denied)
		}
		purposes := map[string]bool{}
		for _, ev := range secEvents(t, auditor, "--event", "recording.accessed") {
			if ev.Actor != "auditor" {
				t.Errorf("recording.accessed by %q: %+v; only the auditor read recordings", ev.Actor, ev)
			}
			if ev.SessionID == s1.ID {
				purposes[ev.Code] = true
			}
		}
		for _, p := range []string{"replay", "export", "watch"} {
			if !purposes[p] {
				t.Errorf("no recording.accessed event with code %s for %s (got %v)", p, s1.ID, purposes)
			}
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			args []string
		}{
			{name: "both --at and --from", args: []string{"replay", s1.ID, "--at", "1", "--from", "2s"}},
			{name: "bad offset", args: []string{"replay", s1.ID, "--at", "soon"}},
			{name: "zero speed", args: []string{"replay", s1.ID, "--speed", "0"}},
			{name: "bad export format", args: []string{"sessions", "export", s1.ID, "--format", "html"}},
			{name: "search has no --until", args: []string{"sessions", "search", "x", "--until", "1h"}},
			{name: "no session id", args: []string{"sessions", "show"}},
		} {
			if _, stderr, code := run(t, auditor, tt.args...); code != 2 {
				t.Errorf("%s: jit %v: exit %d, stderr %q; want usage exit 2", tt.name, tt.args, code, stderr)
			}
		}
	})

	t.Run("audit list follow", func(t *testing.T) {
		follow := start(t, auditor, "audit", "list", "--follow", "--format", "json", "--event", "policy.reload")
		time.Sleep(500 * time.Millisecond) // let it print the backlog (none) first
		mustRun(t, w.admin, "admin", "reload")
		testkit.WaitFor(t, 10*time.Second, "the policy.reload event on jit audit list --follow", func() bool {
			return strings.Contains(follow.stdout.String(), `"event":"policy.reload"`) || follow.exited()
		})
		if follow.exited() {
			t.Fatalf("jit audit list --follow exited: %v", follow.wait(t, time.Second))
		}
		if err := follow.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if r := follow.wait(t, 5*time.Second); r.Code != 0 || strings.Count(r.Stdout, "\n") != 1 {
			t.Errorf("jit audit list --follow after SIGINT: %v; want exit 0 and one event line", r)
		}
	})

	t.Run("tampered recordings", func(t *testing.T) {
		p1, p2 := secRecordingPath(t, w.d, s1.ID), secRecordingPath(t, w.d, s2.ID)
		orig1, orig2 := readFile(t, p1), readFile(t, p2)
		// The stored files are zstd frames; some cases edit the lines
		// they hold and store those plain, as recordings were before.
		var plain1 bytes.Buffer
		if torn, err := sessionlog.WritePlain(&plain1, bytes.NewReader(orig1)); err != nil || torn {
			t.Fatalf("decompress %s: %v (torn %v)", p1, err, torn)
		}
		lines1 := strings.SplitAfter(plain1.String(), "\n")
		for _, tt := range []struct {
			name    string
			tamper  func()
			session string
			replay  []string // what a replay must still show (with a truncation notice)
			gone    string   // what it must no longer show
		}{
			{name: "flip a byte", session: s1.ID, tamper: func() {
				b := bytes.Clone(orig1)
				b[len(b)/2] ^= 0x20
				secWrite(t, p1, b)
			}},
			{name: "store the lines plain", session: s1.ID, tamper: func() {
				secWrite(t, p1, plain1.Bytes())
			}},
			{name: "drop a line", session: s1.ID, tamper: func() {
				secWrite(t, p1, []byte(strings.Join(slices.Delete(slices.Clone(lines1), 2, 3), "")))
			}},
			{name: "swap two files", session: s1.ID, tamper: func() {
				secWrite(t, p1, orig2)
				secWrite(t, p2, orig1)
			}},
			{name: "truncate mid-frame", session: s1.ID, replay: []string{"first-part"}, tamper: func() {
				secWrite(t, p1, orig1[:len(orig1)-3])
			}},
			{name: "truncate a plain copy mid-line", session: s1.ID, replay: []string{"first-part", "second-needle"}, gone: "end-part", tamper: func() {
				i := bytes.LastIndex(plain1.Bytes(), []byte("end-part")) // in its output event
				secWrite(t, p1, plain1.Bytes()[:i])
			}},
		} {
			tt.tamper()
			v, r := secVerify(t, auditor)
			if r.Code == 0 || v.OK || v.BadSession != tt.session || !strings.Contains(r.Stderr, "session "+tt.session) {
				t.Errorf("%s: jit audit verify = %+v, %v; want a failure naming session %s", tt.name, v, r, tt.session)
			}
			if tt.replay != nil {
				// What a crash leaves behind still plays, with a notice.
				res := start(t, auditor, "replay", s1.ID, "--speed", "8", "--idle-limit", "0.2s").wait(t, 30*time.Second)
				ok := res.Code == 0 && strings.Contains(res.Stderr, "cut short")
				if tt.gone != "" {
					ok = ok && !strings.Contains(res.Stdout, tt.gone)
				}
				for _, want := range tt.replay {
					ok = ok && strings.Contains(res.Stdout, want)
				}
				if !ok {
					t.Errorf("%s: jit replay: %v; want %q and a truncation notice", tt.name, res, tt.replay)
				}
			}
			secWrite(t, p1, orig1)
			secWrite(t, p2, orig2)
		}
		if v, r := secVerify(t, auditor); r.Code != 0 || !v.OK || v.Recordings < 2 {
			t.Errorf("jit audit verify after restoring the recordings: %+v %v", v, r)
		}
	})
}

// secSearch runs jit sessions search --format json as e.
func secSearch(t testing.TB, e *engineer, query string) []api.SearchHit {
	t.Helper()
	var hits []api.SearchHit
	for _, line := range strings.Split(strings.TrimSpace(mustRun(t, e, "sessions", "search", query, "--format", "json")), "\n") {
		if line == "" {
			continue
		}
		var h api.SearchHit
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatalf("search hit line %q: %v", line, err)
		}
		hits = append(hits, h)
	}
	return hits
}

// secEvents runs jit audit list --format json as e and parses the events
// with every field, the session id included.
func secEvents(t testing.TB, e *engineer, args ...string) []api.Event {
	t.Helper()
	var evs []api.Event
	for _, line := range strings.Split(strings.TrimSpace(mustRun(t, e, append([]string{"audit", "list", "--format", "json"}, args...)...)), "\n") {
		if line == "" {
			continue
		}
		var ev api.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit event line %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// secRecordingPath finds a session's recording under DATA/recordings.
func secRecordingPath(t testing.TB, d *daemon, id string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(d.Data, "recordings", "*", "*", "*", id+".cast.zst"))
	if err != nil || len(m) != 1 {
		t.Fatalf("recording of %s under %s: %v %v", id, d.Data, m, err)
	}
	return m[0]
}

func secWrite(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

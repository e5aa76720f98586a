package e2e

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jitssh/jitssh/internal/browsertest"
	"github.com/jitssh/jitssh/internal/testkit"
)

var updateConsoleShots = flag.Bool("update-console-screenshots", false, "write the console's screenshots to docs/console/*.png")

// consoleWait bounds each wait for a page or a player to show something.
const consoleWait = 20 * time.Second

// consoleBrowser is one person's Chromium, logged in to the console with
// jit console (through $BROWSER).
type consoleBrowser struct {
	*browsertest.Browser
	base string
}

func (w *secWorld) tlsCert(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.d.Data, "tls", "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// consoleLogin runs jit console as e with $BROWSER set to a script that
// writes the URL it is handed to a file, and opens that URL in a fresh
// browser.
func (w *secWorld) consoleLogin(t *testing.T, e *engineer) *consoleBrowser {
	t.Helper()
	dir := t.TempDir()
	urlFile, script := filepath.Join(dir, "url"), filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+urlFile+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin(t, "jit"), "console")
	cmd.Env = append(e.env(), "BROWSER="+script)
	cmd.Dir = e.Home
	if r := startCommand(t, cmd, "console").wait(t, commandTimeout); r.Code != 0 || !strings.Contains(r.Stderr, "opened the console") {
		t.Fatalf("jit console as %s: %v", e.Name, r)
	}
	var url string
	testkit.WaitFor(t, 10*time.Second, "the browser script to get the URL", func() bool {
		b, _ := os.ReadFile(urlFile)
		url = string(b)
		return strings.Contains(url, "#code=")
	})
	if !strings.HasPrefix(url, "https://"+w.d.API+"/console/login#code=jitc_") {
		t.Fatalf("jit console opened %q, want the console's login page with the code in the fragment", url)
	}
	b := &consoleBrowser{Browser: browsertest.Start(t, browsertest.Options{TrustCertPEM: w.tlsCert(t), Timeout: 5 * time.Minute}), base: "https://" + w.d.API}
	// The login page asks whose code it holds before spending it.
	if err := b.Do(consoleWait, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#login-confirm"))); err != nil {
		t.Fatalf("console login page of %s: %v\n%v", e.Name, err, b.Messages())
	}
	if got := b.Text("#login-status"); !strings.Contains(got, "as "+e.Name+"?") {
		t.Errorf("the login page asks %q, want it to name %s", got, e.Name)
	}
	if err := b.Do(consoleWait, chromedp.Click(chromedp.CSS("#login-confirm")), chromedp.WaitVisible(chromedp.CSS("nav"))); err != nil {
		t.Fatalf("console login of %s: %v\n%v", e.Name, err, b.Messages())
	}
	if loc, _ := chromedp.Run(b.Ctx, chromedp.Location()); strings.Contains(loc, "code=") {
		t.Errorf("the code stayed in the address bar: %s", loc)
	}
	return b
}

func (b *consoleBrowser) open(t *testing.T, path, waitFor string) {
	t.Helper()
	if err := b.Do(consoleWait, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(waitFor))); err != nil {
		t.Fatalf("open %s (waiting for %s): %v\npage: %s\n%v", path, waitFor, err, b.Text("main"), b.Messages())
	}
}

// shot saves a screenshot of the page as docs/console/NAME.png with
// -update-console-screenshots.
func (b *consoleBrowser) shot(t *testing.T, name string) {
	t.Helper()
	if !*updateConsoleShots {
		return
	}
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "console", name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (b *consoleBrowser) waitText(t *testing.T, sel, want string) {
	t.Helper()
	testkit.WaitFor(t, consoleWait, sel+" to show "+strconv.Quote(want), func() bool {
		return strings.Contains(b.Text(sel), want)
	})
}

// TestIssue14Console is the acceptance test of issue 14 through the
// binaries and a real Chromium: an approver approves a waiting jit ssh in
// the page and the CLI gets its certificate; an auditor searches for a
// command's output, opens the hit and the player shows it at that moment;
// a live session is watched as it types and ended by an admin; a share
// link works for a browser with no login, then expires; a POST without the
// CSRF token is refused; no page reports a CSP violation or script error.
func TestIssue14Console(t *testing.T) {
	t.Parallel()
	browsertest.Require(t)
	w := newSecWorld(t)
	carol, auditor := w.consoleLogin(t, w.carol), w.consoleLogin(t, w.auditor)
	auditor.shot(t, "home")

	t.Run("approve in the page", func(t *testing.T) {
		ssh := start(t, w.alice, "ssh", w.login+"@db2", "--reason", "rotate the <b>logs</b> now", "--", "echo approved-by-console")
		testkit.WaitFor(t, consoleWait, "the request on carol's pending page", func() bool {
			_ = carol.Do(consoleWait, chromedp.Navigate(carol.base+"/console/requests"))
			return strings.Contains(carol.Text("main"), "rotate the <b>logs</b> now")
		})
		carol.shot(t, "requests")
		if err := carol.Do(consoleWait, chromedp.SetValue(chromedp.CSS("section.request input[name=reason]"), "looks fine"),
			chromedp.Click(chromedp.CSS("section.request button.approve")), chromedp.WaitVisible(chromedp.CSS("p.flash"))); err != nil {
			t.Fatalf("approve: %v\n%s", err, carol.Text("main"))
		}
		if r := ssh.wait(t, commandTimeout); r.Code != 0 || !strings.Contains(r.Stdout, "approved-by-console") {
			t.Fatalf("jit ssh after the approval in the console: %v", r)
		}
	})

	var needleID string
	t.Run("search and play at the hit", func(t *testing.T) {
		r := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "look at the disk", "--",
			"echo first-screen; sleep 2; echo console-needle-output; sleep 1; echo after-needle").wait(t, commandTimeout)
		if r.Code != 0 {
			t.Fatalf("jit ssh: %v", r)
		}
		needleID = secSessionWith(t, w.auditor, "console-needle-output", sessionWait).ID
		testkit.WaitFor(t, consoleWait, "a search hit for the output", func() bool {
			_ = auditor.Do(consoleWait, chromedp.Navigate(auditor.base+"/console/sessions?q=console-needle-output"))
			return strings.Contains(auditor.Text("#hits"), needleID)
		})
		auditor.shot(t, "search")
		href, err := chromedp.Run(auditor.Ctx, chromedp.Evaluate[string](`document.querySelector("a.hit-o").getAttribute("href")`))
		if err != nil {
			t.Fatal(err)
		}
		at, _ := strconv.ParseFloat(regexp.MustCompile(`at=([0-9.]+)`).FindStringSubmatch(href)[1], 64)
		if at < 1.5 {
			t.Errorf("hit offset %v, want the output's moment (about 2s in)", at)
		}
		if err := auditor.Do(consoleWait, chromedp.Click(chromedp.CSS("a.hit-o")), chromedp.WaitVisible(chromedp.CSS("#player"))); err != nil {
			t.Fatal(err)
		}
		auditor.waitText(t, "#player", "console-needle-output")
		from, _ := chromedp.Run(auditor.Ctx, chromedp.Evaluate[float64](`window.jitPlayer.from`))
		if from < at-0.001 || from > at+0.001 {
			t.Errorf("the player's window starts at %v, want the hit's %v", from, at)
		}
		if !strings.Contains(auditor.Text("#player"), "first-screen") {
			t.Errorf("the screen at the hit lacks the output before it: %q", auditor.Text("#player"))
		}
		auditor.shot(t, "player")
	})

	var shareURL string
	var shareMade time.Time
	t.Run("make a share link", func(t *testing.T) {
		auditor.open(t, "/console/sessions/"+needleID+"/play", "#share-make")
		if err := auditor.Do(consoleWait, chromedp.SetValue(chromedp.CSS("#share-ttl"), "1m"), chromedp.Click(chromedp.CSS("#share-make")),
			chromedp.WaitVisible(chromedp.CSS("#share-url"))); err != nil {
			t.Fatal(err)
		}
		shareMade = time.Now()
		var err error
		if shareURL, err = chromedp.Run(auditor.Ctx, chromedp.Evaluate[string](`document.querySelector("#share-url").value`)); err != nil {
			t.Fatal(err)
		}
		auditor.shot(t, "shares")
		stranger := &consoleBrowser{Browser: browsertest.Start(t, browsertest.Options{TrustCertPEM: w.tlsCert(t)}), base: auditor.base}
		if err := stranger.Do(consoleWait, chromedp.Navigate(shareURL), chromedp.WaitVisible(chromedp.CSS("#player"))); err != nil {
			t.Fatal(err)
		}
		stranger.waitText(t, "#player", "after-needle")
		stranger.shot(t, "shared")
		stranger.open(t, "/console/sessions", "#error-message")
		if p := stranger.Problems(); len(p) > 0 {
			t.Errorf("the shared player reported problems: %v", p)
		}
		evs := auditList(t, w.auditor, "--event", "recording.accessed")
		if _, ok := findEvent(evs, "recording.accessed", func(ev auditEvent) bool {
			return code(ev) == "share" && ev.SessionID == needleID && ev.Data["share_id"] != ""
		}); !ok {
			t.Errorf("no recording.accessed with code share for %s: %+v", needleID, evs)
		}
	})

	t.Run("live session watched and ended", func(t *testing.T) {
		ssh := start(t, w.bob, "ssh", w.login+"@db1", "--reason", "watch me type", "--", "for i in $(seq 1 40); do echo tick-$i; sleep 1; done")
		var id string
		testkit.WaitFor(t, consoleWait, "the session on the live page", func() bool {
			_ = auditor.Do(consoleWait, chromedp.Navigate(auditor.base+"/console/live"))
			if m := auditor.Text("#live-sessions a.watch"); m != "" {
				id = m
				return true
			}
			return ssh.exited()
		})
		auditor.shot(t, "live")
		if err := auditor.Do(consoleWait, chromedp.Click(chromedp.CSS("a.watch")), chromedp.WaitVisible(chromedp.CSS("#player"))); err != nil {
			t.Fatal(err)
		}
		auditor.waitText(t, "#player", "tick-2")
		seen := auditor.Text("#player")
		auditor.waitText(t, "#player", "tick-"+strconv.Itoa(countTicks(seen)+2))
		if ssh.exited() {
			t.Fatalf("the session ended while being watched: %v", ssh.wait(t, time.Second))
		}
		admin := w.consoleLogin(t, w.admin)
		admin.open(t, "/console/live", "#live-sessions")
		if err := admin.Do(consoleWait, chromedp.Click(chromedp.CSS("#live-sessions button.deny")), chromedp.WaitVisible(chromedp.CSS("p.flash"))); err != nil {
			t.Fatalf("end session %s: %v\n%s", id, err, admin.Text("main"))
		}
		r := ssh.wait(t, 30*time.Second)
		if r.Code == 0 || strings.Contains(r.Stdout, "tick-40") {
			t.Errorf("the revoked session ran on: %v", r)
		}
		if p := admin.Problems(); len(p) > 0 {
			t.Errorf("admin's pages reported problems: %v", p)
		}
	})

	t.Run("audit and verify", func(t *testing.T) {
		auditor.open(t, "/console/audit?verify=1", "#verify-result")
		if got := auditor.Text("#verify-result"); !strings.HasPrefix(got, "Verified") {
			t.Errorf("verify in the console: %q", got)
		}
		auditor.shot(t, "audit")
	})

	t.Run("a POST without the CSRF token is refused", func(t *testing.T) {
		status, err := chromedp.Run(auditor.Ctx, chromedp.Evaluate[int](`fetch("/console/logout", {method: "POST", body: new URLSearchParams({})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil || status != 403 {
			t.Errorf("POST /console/logout without a token: status %d, err %v; want 403", status, err)
		}
		auditor.open(t, "/console/", "nav") // still logged in
	})

	t.Run("share link expires", func(t *testing.T) {
		time.Sleep(time.Until(shareMade.Add(time.Minute + time.Second)))
		stranger := &consoleBrowser{Browser: browsertest.Start(t, browsertest.Options{TrustCertPEM: w.tlsCert(t)}), base: auditor.base}
		if err := stranger.Do(consoleWait, chromedp.Navigate(shareURL), chromedp.WaitVisible(chromedp.CSS("#error-message"))); err != nil {
			t.Fatal(err)
		}
		if got := stranger.Text("#error-message"); !strings.Contains(got, "not valid") {
			t.Errorf("expired share link: %q", got)
		}
	})

	for name, b := range map[string]*consoleBrowser{"carol": carol, "auditor": auditor} {
		if p := b.Problems(); len(p) > 0 {
			t.Errorf("%s's pages reported CSP violations or script errors: %v", name, p)
		}
	}
}

// countTicks returns the highest N of the tick-N lines in s.
func countTicks(s string) int {
	n := 0
	for _, m := range regexp.MustCompile(`tick-([0-9]+)`).FindAllStringSubmatch(s, -1) {
		if v, _ := strconv.Atoi(m[1]); v > n {
			n = v
		}
	}
	return n
}

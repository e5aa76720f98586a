package console_test

import (
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jitssh/jitssh/internal/browsertest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestBrowserPlayer plays a recording in Chromium under the console's
// CSP: opened at an offset, the terminal shows the output of that moment
// (rebuilt by the window's prelude), not the start's; a seek to the end
// loads that window; no CSP violation or script error is reported.
func TestBrowserPlayer(t *testing.T) {
	e := newEnv(t)
	e.requirePlayer(t)
	var steps []step
	for i := range 40 {
		steps = append(steps, step{time.Second, "output-line-" + string(rune('a'+i%26)) + string(rune('0'+i/26)) + "\r\n"})
	}
	steps = append(steps, step{100 * time.Second, "much-later-marker\r\n"})
	x := e.recordSession("s_browser", "alice", steps)
	b := browsertest.Start(t, browsertest.Options{TrustCertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.server.Certificate().Raw})})
	// The login page asks whose code it is before it spends it.
	if err := b.Do(20*time.Second, chromedp.Navigate(e.server.URL+"/console/login#code="+e.code("sec")), chromedp.WaitVisible(chromedp.CSS("#login-confirm"))); err != nil {
		t.Fatalf("login page: %v\n%v", err, b.Messages())
	}
	if got := b.Text("#login-status"); !strings.Contains(got, "Log in to the jitssh console as sec?") {
		t.Errorf("login page says %q, want it to ask to log in as sec", got)
	}
	if err := b.Do(20*time.Second, chromedp.Click(chromedp.CSS("#login-confirm")), chromedp.WaitVisible(chromedp.CSS("nav"))); err != nil {
		t.Fatalf("login: %v\n%v", err, b.Messages())
	}
	if err := b.Do(20*time.Second, chromedp.Navigate(e.server.URL+"/console/sessions/"+x.ID+"/play?at=139")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the player to show the output at 139s", func() bool {
		return strings.Contains(b.Text("#player"), "much-later-marker")
	})
	if got := b.Text("#player"); !strings.Contains(got, "output-line-n1") {
		t.Errorf("the screen at 139s lacks the output before the window (prelude): %q", got)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("console problems: %v", p)
	}
}

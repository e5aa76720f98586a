// Package browsertest drives Debian's headless Chromium from tests with
// chromedp: a fresh user data dir in t.TempDir(), the flags that keep it
// off the network (no background networking, component updates, sync or
// QUIC), trust in exactly one self-signed certificate by its SPKI hash,
// and every console message, exception and log entry kept, so a test can
// check that a page ran without CSP violations or script errors.
//
// Tests call Require first: it skips when chromium is missing, except with
// CI=true, where a missing browser is a failure (make deps installs it).
package browsertest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path is where Debian's chromium package installs the browser.
const Path = "/usr/bin/chromium"

// Require skips t when chromium is missing, or fails it with CI=true.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(Path); err == nil {
		return
	}
	msg := "chromium not found at " + Path + "; install it with: apt-get install chromium (make deps does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Browser is one headless Chromium with one tab.
type Browser struct {
	Ctx context.Context // the tab's context, for chromedp.Run

	mu   sync.Mutex
	msgs []string
}

// Options configure Start.
type Options struct {
	// TrustCertPEM, if set, holds PEM certificates (one or more blocks)
	// the browser accepts for TLS (matched by their public keys' SHA-256,
	// nothing else skipped).
	TrustCertPEM []byte
	// Timeout bounds the whole browser's life; zero means two minutes.
	Timeout time.Duration
}

// Start starts Chromium; it is stopped in t.Cleanup.
func Start(t testing.TB, opts Options) *Browser {
	t.Helper()
	Require(t)
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	// Chromium writes its crash database under $XDG_CONFIG_HOME (or
	// ~/.config) whatever the user data dir: give it a home of its own,
	// so a test leaves the machine's home as it found it.
	home := t.TempDir()
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path),
		chromedp.NoInheritEnv,
		chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
			"PATH="+os.Getenv("PATH"), "TZ=UTC"),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("enable-precise-memory-info", true),
		chromedp.WindowSize(1280, 900),
	}
	if len(opts.TrustCertPEM) > 0 {
		spki, err := spkiHash(opts.TrustCertPEM)
		if err != nil {
			t.Fatal(err)
		}
		flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", spki))
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), opts.Timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, flags...)
	tab, cancelTab := chromedp.NewContext(actx)
	b := &Browser{Ctx: tab}
	stop := func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
	}
	if _, err := chromedp.Run(tab, chromedp.Location()); err != nil {
		stop()
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(tab)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.msgs = append(b.msgs, string(m.Type)+" ("+m.Source+"): "+m.Text)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	return b
}

// Messages returns every console message, exception and log entry so far.
func (b *Browser) Messages() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.msgs...)
}

// Problems returns the messages that are CSP violations, exceptions or
// errors: a page that works under the console's policy has none.
func (b *Browser) Problems() []string {
	var out []string
	for _, m := range b.Messages() {
		if strings.Contains(m, networkChanged) {
			continue
		}
		l := strings.ToLower(m)
		if strings.Contains(l, "content security policy") || strings.HasPrefix(l, "exception") ||
			strings.HasPrefix(l, "error") && !strings.Contains(l, "favicon") && !strings.Contains(l, "status of 4") {
			out = append(out, m)
		}
	}
	return out
}

// spkiHash is the base64 SHA-256 of each certificate's public key,
// comma-separated: the form --ignore-certificate-errors-spki-list takes.
func spkiHash(certPEM []byte) (string, error) {
	var out []string
	for len(certPEM) > 0 {
		blk, rest := pem.Decode(certPEM)
		if blk == nil {
			break
		}
		certPEM = rest
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", fmt.Errorf("browsertest: trusted certificate: %w", err)
		}
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		out = append(out, base64.StdEncoding.EncodeToString(sum[:]))
	}
	if len(out) == 0 {
		return "", fmt.Errorf("browsertest: trusted certificate is not PEM")
	}
	return strings.Join(out, ","), nil
}

// Text returns the innerText of the first element matching sel, or "" if
// there is none yet.
func (b *Browser) Text(sel string) string {
	s, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).innerText||""`, sel)))
	return s
}

// networkChanged is Chromium's error when the machine's addresses change
// under it (another test adding a network namespace's veth pair): it
// aborts loads in flight, which says nothing of the page.
const networkChanged = "ERR_NETWORK_CHANGED"

// Do runs actions in the tab within timeout, again (at most three times)
// when Chromium aborted them for a change of the machine's network.
func (b *Browser) Do(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	var err error
	for range 3 {
		ctx, cancel := context.WithTimeout(b.Ctx, timeout)
		err = chromedp.Do(ctx, actions...)
		cancel()
		if err == nil || !strings.Contains(err.Error(), networkChanged) {
			return err
		}
	}
	return err
}

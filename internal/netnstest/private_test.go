package netnstest

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestPrivateRoot: real useradd, groupadd and userdel change the private
// root's /etc and /home only; the machine sees none of it, and the
// private root is in the host's network namespace.
func TestPrivateRoot(t *testing.T) {
	h := New(t, "acct1")
	p := h.PrivateRoot(t)
	machinePasswd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if out := p.Run(t, "ls", "-A", "/home"); out != "" {
		t.Fatalf("private /home is not empty: %q", out)
	}
	steps := [][]string{
		{"groupadd", "jitssh-nstest"},
		{"useradd", "-l", "-m", "-u", "61999", "-G", "jitssh-nstest", "-s", "/bin/sh", "jit-nstest"},
		{"sh", "-c", "mkdir -p /var/lib/jitssh/accounts /usr/local/sbin && echo x > /usr/local/sbin/jitssh-nstest && echo mail > /var/mail/jit-nstest && chown jit-nstest /var/mail/jit-nstest"},
	}
	for _, s := range steps {
		p.Run(t, s[0], s[1:]...)
	}
	inside := p.Run(t, "id", "jit-nstest")
	if !strings.Contains(inside, "uid=61999(jit-nstest)") || !strings.Contains(inside, "jitssh-nstest") {
		t.Fatalf("id inside: %q", inside)
	}
	if fi, err := os.Stat(p.Path("/home/jit-nstest")); err != nil || !fi.IsDir() {
		t.Fatalf("home inside, seen through %s: %v", p.Path("/home/jit-nstest"), err)
	}
	for _, path := range []string{"/home/jit-nstest", "/var/lib/jitssh", "/usr/local/sbin/jitssh-nstest", "/var/mail/jit-nstest"} {
		if _, err := os.Lstat(path); err == nil {
			t.Errorf("the machine sees %s", path)
		}
	}
	if now, err := os.ReadFile("/etc/passwd"); err != nil || string(now) != string(machinePasswd) {
		t.Fatalf("the machine's /etc/passwd changed (%v)", err)
	}
	addr := p.Run(t, "ip", "-o", "-4", "addr", "show")
	if !strings.Contains(addr, h.Addr.String()+"/30") {
		t.Fatalf("private root is not in %s's network namespace: %s", h.Name, addr)
	}
	p.Run(t, "userdel", "-r", "jit-nstest")
	if out := p.Run(t, "sh", "-c", "getent passwd jit-nstest || echo gone"); strings.TrimSpace(out) != "gone" {
		t.Fatalf("after userdel: %q", out)
	}
	// A process started inside is killed by the cleanup.
	sleeper := p.Command(t.Context(), "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Wait() })
	// nsenter enters the namespace just after it starts.
	testkit.WaitFor(t, 5*time.Second, "the holder and the sleep in the namespace", func() bool { return len(p.Processes()) == 2 })
}

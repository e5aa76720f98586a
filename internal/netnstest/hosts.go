package netnstest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// bindHosts is the shell step that runs inside a fresh mount namespace:
// bind the file $0 over /etc/hosts, then exec the command. The mount
// belongs to that namespace alone (propagation private), so it goes when
// the command's process tree ends and the machine's /etc/hosts is never
// written.
const bindHosts = `mount --bind "$0" /etc/hosts && exec "$@"`

// HostsFile writes an /etc/hosts file mapping each name to its address
// (with the usual localhost lines) into t.TempDir() and returns its path,
// for WithHosts.
func HostsFile(t testing.TB, names map[string]netip.Addr) string {
	t.Helper()
	lines := []string{"127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"}
	keys := make([]string, 0, len(names))
	for n := range names {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, n := range keys {
		lines = append(lines, names[n].String()+"\t"+n)
	}
	path := filepath.Join(t.TempDir(), "hosts")
	// 0644: the processes that resolve through it may run as another user.
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatalf("netnstest: write hosts file: %v", err)
	}
	return path
}

// WithHosts is the command line that runs argv with hostsFile as its
// /etc/hosts: `unshare --mount --propagation private` and a bind mount
// inside that mount namespace. Wrap it with (*Host).Argv to run it in a
// network namespace too (ip netns exec makes a mount namespace of its
// own; the bind goes into a fresh one below it).
func WithHosts(hostsFile string, argv ...string) []string {
	return append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", bindHosts, hostsFile}, argv...)
}

// CommandWithHosts returns the command that runs name with args in the
// root network namespace with hostsFile as its /etc/hosts.
func CommandWithHosts(ctx context.Context, hostsFile, name string, args ...string) *exec.Cmd {
	argv := WithHosts(hostsFile, append([]string{name}, args...)...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// CommandWithHosts returns the command that runs name with args inside h's
// namespace with hostsFile as its /etc/hosts: an engineer on their own
// machine who reaches the bastion by its public name.
func (h *Host) CommandWithHosts(ctx context.Context, hostsFile, name string, args ...string) *exec.Cmd {
	inner := WithHosts(hostsFile, append([]string{name}, args...)...)
	argv := h.Argv(inner[0], inner[1:]...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// String names the host for failure messages.
func (h *Host) String() string {
	return fmt.Sprintf("%s (namespace %s, %s)", h.Label, h.Name, h.Addr)
}

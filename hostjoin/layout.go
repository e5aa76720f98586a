// Package hostjoin is the target side of host enrolment: `jit host join`
// installs what a stock OpenSSH sshd needs to accept the bastion's
// per-session certificates (the target CA, its revocation list, a host
// certificate, principals answered by `jit host principals`, an sshd
// drop-in, a renewal timer), `jit host renew` refreshes the certificate
// and the list, and both switch sshd over only after `sshd -t` accepts the
// new files, putting the old ones back byte for byte otherwise.
//
// It speaks to jitd through package api only; it never links the server.
package hostjoin

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Paths inside a root, as the target sees them when the root is "/".
const (
	// Dir holds jitssh's own files on the target.
	Dir = "/etc/ssh/jitssh"
	// HostFile holds the host's name in the policy, one line.
	HostFile = Dir + "/host"
	// APIFile holds the CA's URL, TLS fingerprint and the host key used,
	// for jit host renew.
	APIFile = Dir + "/api"
	// TargetCAFile is sshd's TrustedUserCAKeys.
	TargetCAFile = Dir + "/target_ca.pub"
	// KRLFile is sshd's RevokedKeys.
	KRLFile = Dir + "/revoked.krl"
	// LoginsFile lists the logins policy may grant on this host, one a line.
	LoginsFile = Dir + "/logins"
	// SSHDConfig is the main sshd configuration checked with sshd -t.
	SSHDConfig = "/etc/ssh/sshd_config"
	// DropIn is the sshd configuration snippet jit host join writes.
	DropIn = "/etc/ssh/sshd_config.d/50-jitssh.conf"
	// DefaultHostKey is the private host key whose public half joins.
	DefaultHostKey = "/etc/ssh/ssh_host_ed25519_key"
	// ServiceUnit and TimerUnit run jit host renew daily under systemd.
	ServiceUnit = "/etc/systemd/system/jitssh-renew.service"
	TimerUnit   = "/etc/systemd/system/jitssh-renew.timer"
	// TimerWants enables the timer, as systemctl enable would.
	TimerWants = "/etc/systemd/system/timers.target.wants/jitssh-renew.timer"
	// PIDFile is where sshd writes its pid (Debian's default).
	PIDFile = "/run/sshd.pid"
)

// Layout places the target's files under Root ("/" on a real host; a
// directory of a test or an image otherwise). Every path jit writes, and
// every path the drop-in names, is under Root.
type Layout struct {
	Root string
}

// NewLayout returns the layout of root ("" means "/"), made absolute. A
// root with whitespace is refused: sshd splits AuthorizedPrincipalsCommand
// at spaces, and the command names the root.
func NewLayout(root string) (Layout, error) {
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return Layout{}, fmt.Errorf("root %q: %w", root, err)
	}
	if strings.ContainsAny(abs, " \t\n\r\"'\\%") {
		return Layout{}, fmt.Errorf("root %q contains a space, quote, backslash or %%, which sshd's configuration cannot name", root)
	}
	return Layout{Root: abs}, nil
}

// Path returns p (a path as the target sees it) under the root.
func (l Layout) Path(p string) string {
	return filepath.Join(l.Root, p)
}

// IsHostRoot reports whether the layout is the machine's own root.
func (l Layout) IsHostRoot() bool { return l.Root == "/" }

// rootArgs is the --root argument that commands written into the
// configuration pass on, empty for "/".
func (l Layout) rootArgs() string {
	if l.IsHostRoot() {
		return ""
	}
	return " --root " + l.Root
}

package hostjoin

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/sshkey"
)

// krlMagic starts every OpenSSH KRL (PROTOCOL.krl).
const krlMagic = "SSHKRL\n\x00"

// Install is what a join or a renewal writes: where, for which host key,
// which jit runs as the principals command, and what jitd answered (nil
// in a dry run of a join, which does not spend the token).
type Install struct {
	Layout Layout
	// HostKey is the private host key's path; its public half is beside it
	// (.pub) and its certificate too (-cert.pub).
	HostKey string
	// Jit is the absolute path of the jit binary sshd runs as
	// AuthorizedPrincipalsCommand and the timer runs for renewal.
	Jit string
	// CA and Fingerprint are the API's URL and TLS pin, kept for renewal.
	CA, Fingerprint string
	Answer          *api.HostJoinResponse
}

// CertPath is where the host certificate goes: beside the host key.
func (in Install) CertPath() string { return in.HostKey + "-cert.pub" }

// Files returns every file of the installation, in the order a switch
// writes them (the drop-in after the files it names).
func (in Install) Files() []File {
	l := in.Layout
	a := in.Answer
	unknown := a == nil
	if a == nil {
		a = &api.HostJoinResponse{}
	}
	reg := func(p string, data []byte, fromJitd bool) File {
		return File{Path: p, Data: data, Mode: 0o644, Unknown: fromJitd && unknown}
	}
	return []File{
		reg(l.Path(HostFile), []byte(a.Host+"\n"), true),
		reg(l.Path(APIFile), in.apiFile(), false),
		reg(l.Path(TargetCAFile), []byte(strings.TrimSpace(a.TargetCA)+"\n"), true),
		reg(l.Path(KRLFile), a.KRL, true),
		reg(l.Path(LoginsFile), lines(a.Logins), true),
		reg(in.CertPath(), []byte(strings.TrimSpace(a.HostCertificate)+"\n"), true),
		in.accountWrapper(),
		reg(l.Path(DropIn), []byte(in.DropInText()), false),
		reg(l.Path(ServiceUnit), []byte(in.serviceUnit()), false),
		reg(l.Path(TimerUnit), []byte(timerUnit), false),
		{Path: l.Path(TimerWants), Link: TimerUnit},
	}
}

func lines(ss []string) []byte {
	var b bytes.Buffer
	for _, s := range ss {
		b.WriteString(s + "\n")
	}
	return b.Bytes()
}

// PrincipalsCommand is the AuthorizedPrincipalsCommand line's value.
func (in Install) PrincipalsCommand() string {
	return in.Jit + " host principals" + in.Layout.rootArgs() + " %u"
}

// RenewCommand is the command the timer and the cron line run.
func (in Install) RenewCommand() string {
	return in.Jit + " host renew" + in.Layout.rootArgs()
}

// CronLine is the /etc/crontab line equivalent to the systemd timer.
func (in Install) CronLine() string {
	return "17 3 * * * root " + in.RenewCommand()
}

// DropInText is the sshd configuration jit host join installs. sshd keeps
// the first value it reads of a keyword; the main file includes
// sshd_config.d at its top, and the check after the switch (sshd -T)
// proves these values are the ones in force.
func (in Install) DropInText() string {
	l := in.Layout
	return strings.Join([]string{
		"# Written by jit host join; jit host join and jit host renew replace it whole.",
		"# The host certificate from the jitssh host CA, so the bastion needs no pinned key.",
		"HostCertificate " + in.CertPath(),
		"# Only the jitssh target CA signs user certificates for this host (the bastion's per-session ones).",
		"TrustedUserCAKeys " + l.Path(TargetCAFile),
		"# Revoked target certificates (a KRL, refreshed by jit host renew); sshd refuses every key if it cannot read it.",
		"RevokedKeys " + l.Path(KRLFile),
		"# Certificates are accepted only for LOGIN@THISHOST, for the logins policy may grant here.",
		"AuthorizedPrincipalsCommand " + in.PrincipalsCommand(),
		"AuthorizedPrincipalsCommandUser nobody",
		"",
	}, "\n")
}

// inForce are the sshd -T keywords and values the drop-in must set.
func (in Install) inForce() map[string]string {
	l := in.Layout
	return map[string]string{
		"hostcertificate":                 in.CertPath(),
		"trustedusercakeys":               l.Path(TargetCAFile),
		"revokedkeys":                     l.Path(KRLFile),
		"authorizedprincipalscommand":     in.PrincipalsCommand(),
		"authorizedprincipalscommanduser": "nobody",
	}
}

func (in Install) apiFile() []byte {
	return []byte("# The jitssh CA this host joined, for jit host renew.\n" +
		"url " + in.CA + "\n" +
		"fingerprint " + in.Fingerprint + "\n" +
		"host-key " + in.HostKey + "\n")
}

func (in Install) serviceUnit() string {
	return "[Unit]\n" +
		"Description=Renew this host's jitssh host certificate and revocation list\n" +
		"Wants=network-online.target\n" +
		"After=network-online.target\n\n" +
		"[Service]\n" +
		"Type=oneshot\n" +
		"ExecStart=" + in.RenewCommand() + "\n"
}

const timerUnit = "[Unit]\n" +
	"Description=Renew this host's jitssh host certificate daily\n\n" +
	"[Timer]\n" +
	"OnCalendar=daily\n" +
	"RandomizedDelaySec=1h\n" +
	"Persistent=true\n\n" +
	"[Install]\n" +
	"WantedBy=timers.target\n"

// APIConfig is what APIFile records.
type APIConfig struct {
	URL, Fingerprint, HostKey string
}

// ParseAPIFile reads APIFile's content.
func ParseAPIFile(data []byte) (APIConfig, error) {
	var c APIConfig
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "url":
			c.URL = val
		case "fingerprint":
			c.Fingerprint = val
		case "host-key":
			c.HostKey = val
		default:
			return c, fmt.Errorf("unknown line %q", line)
		}
	}
	if c.URL == "" || c.Fingerprint == "" {
		return c, fmt.Errorf("no url or fingerprint line")
	}
	return c, nil
}

// CheckAnswer refuses an answer from jitd that this host must not install:
// a bad name or login, a certificate that is not a host certificate for
// hostKey and the answer's host from its host CA, a target CA key that
// sshkey refuses, or a KRL that is not one.
func CheckAnswer(a api.HostJoinResponse, hostKey ssh.PublicKey, now time.Time) error {
	if err := validName("host", a.Host); err != nil {
		return err
	}
	for _, l := range a.Logins {
		if err := validName("login", l); err != nil {
			return err
		}
	}
	if _, err := sshkey.ParseAuthorized(a.TargetCA); err != nil {
		return fmt.Errorf("target CA: %w", err)
	}
	hostCA, err := sshkey.ParseAuthorized(a.HostCA)
	if err != nil {
		return fmt.Errorf("host CA: %w", err)
	}
	if len(a.KRL) > 0 && !bytes.HasPrefix(a.KRL, []byte(krlMagic)) {
		return fmt.Errorf("the revocation list is not an OpenSSH KRL (%d bytes)", len(a.KRL))
	}
	return checkHostCert(a, hostKey, hostCA, now)
}

func checkHostCert(a api.HostJoinResponse, hostKey, hostCA ssh.PublicKey, now time.Time) error {
	k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(a.HostCertificate))
	if err != nil || len(bytes.TrimSpace(rest)) > 0 {
		return fmt.Errorf("host certificate %q is not one authorized_keys line", bounded(a.HostCertificate))
	}
	cert, ok := k.(*ssh.Certificate)
	switch {
	case !ok || cert.CertType != ssh.HostCert:
		return fmt.Errorf("host certificate is not a host certificate")
	case !bytes.Equal(cert.Key.Marshal(), hostKey.Marshal()):
		return fmt.Errorf("host certificate is for key %s, not this host's %s", ssh.FingerprintSHA256(cert.Key), ssh.FingerprintSHA256(hostKey))
	case !bytes.Equal(cert.SignatureKey.Marshal(), hostCA.Marshal()):
		return fmt.Errorf("host certificate is signed by %s, not the host CA %s", ssh.FingerprintSHA256(cert.SignatureKey), ssh.FingerprintSHA256(hostCA))
	case !contains(cert.ValidPrincipals, a.Host):
		return fmt.Errorf("host certificate names %q, not host %q", cert.ValidPrincipals, a.Host)
	case uint64(now.Unix()) >= cert.ValidBefore:
		return fmt.Errorf("host certificate expired at %s", time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// validName is the rule of policy.ValidName (which jit must not link), for
// names written into files and printed to sshd as principals.
func validName(kind, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s name is empty", kind)
	case len(s) > 255 || !utf8.ValidString(s):
		return fmt.Errorf("%s name %q is too long or not UTF-8", kind, bounded(s))
	case s[0] == '-' || s == "." || s == "..":
		return fmt.Errorf("%s name %q starts with '-' or is a path element", kind, s)
	}
	for _, r := range s {
		if strings.ContainsRune(",*?%@:/\\!", r) || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("%s name %q contains %q", kind, s, r)
		}
	}
	return nil
}

func bounded(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

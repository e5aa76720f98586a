package hostjoin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/jitssh/jitssh/api"
)

// ProvisionPrincipalsLine is the line `jit host principals root` answers
// for jitd's provisioning certificate: the principal
// jitssh-provision@HOST, with authorized_keys options that allow only the
// account helper (command= must equal the certificate's force-command,
// which sshd checks) and nothing else: no pty, no forwarding, no user rc.
func ProvisionPrincipalsLine(host string) string {
	return `command="` + api.AccountHelperPath + `",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc ` +
		api.ProvisionPrincipalLogin + "@" + host
}

// accountWrapper is the file installed at api.AccountHelperPath: the
// provisioning login's force-command runs the jit binary that joined.
func (in Install) accountWrapper() File {
	return File{Path: in.Layout.Path(api.AccountHelperPath), Data: []byte("#!/bin/sh\nexec " + in.Jit + " host account\n"), Mode: 0o755}
}

// makeStateDir makes the account helper's state directory (0700) after a
// successful switch and notes it in r when it is new. It is not part of
// the switch: an empty directory is harmless, and the helper makes it too.
func makeStateDir(l Layout, r *Result) error {
	dir := l.Path(api.AccountStateDir)
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	r.Changes = append(r.Changes, Change{Path: dir, State: Created})
	return nil
}

// GroupFile is where Principals looks for the account helper's managed
// group: the machine's own, whatever the layout's root, because the
// helper (exec'd by the wrapper without --root) makes accounts there.
const GroupFile = "/etc/group"

// ephemeralMember reports whether user is an ephemeral login in the
// helper's managed group of groupFile (world-readable, unlike the helper's
// record, and sshd asks as nobody).
func ephemeralMember(groupFile, user string) (bool, error) {
	if api.ValidAccountLogin(user) != nil {
		return false, nil
	}
	b, err := os.ReadFile(groupFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", groupFile, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) == 4 && f[0] == api.AccountManagedGroup {
			return slices.Contains(strings.Split(f[3], ","), user), nil
		}
	}
	return false, sc.Err()
}

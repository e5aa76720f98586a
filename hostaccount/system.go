package hostaccount

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// toolTimeout bounds each run of a tool.
const toolTimeout = 30 * time.Second

// toolPath is where the helper looks for its tools, in order: fixed system
// directories, never the caller's $PATH or /usr/local. It is also the
// tools' own PATH.
const toolPath = "/usr/sbin:/usr/bin:/sbin:/bin"

// entry is one line of passwd or group: its name, its id and the rest.
type entry struct {
	name    string
	id      int
	members []string // group: the member list
}

// readDB reads the colon-separated database at inside path p (passwd or
// group), name and the third field as the id.
func (h *helper) readDB(p string) ([]entry, error) {
	b, err := os.ReadFile(h.path(p))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var out []entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		e := entry{name: f[0], id: id}
		if f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// dbs reads /etc/passwd and /etc/group.
func (h *helper) dbs() (passwd, groups []entry, err error) {
	if passwd, err = h.readDB("/etc/passwd"); err == nil {
		groups, err = h.readDB("/etc/group")
	}
	return passwd, groups, err
}

// lookup returns the entry of name in db, if any.
func lookup(db []entry, name string) (entry, bool) {
	i := slices.IndexFunc(db, func(e entry) bool { return e.name == name })
	if i < 0 {
		return entry{}, false
	}
	return db[i], true
}

// hasID reports whether some entry of db has id.
func hasID(db []entry, id int) bool {
	return slices.ContainsFunc(db, func(e entry) bool { return e.id == id })
}

// exists reports whether inside path p exists (not following a final
// symlink).
func (h *helper) exists(p string) (bool, error) {
	_, err := os.Lstat(h.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// listedShell reports whether /etc/shells lists shell.
func (h *helper) listedShell(shell string) (bool, error) {
	b, err := os.ReadFile(h.path("/etc/shells"))
	if err != nil {
		return false, fmt.Errorf("read /etc/shells: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == shell {
			return true, nil
		}
	}
	return false, nil
}

// tool runs the system tool name with args (through Options.Wrap),
// bounded by toolTimeout, and returns an error quoting its output.
func (h *helper) tool(ctx context.Context, name string, args ...string) error {
	_, err := h.toolOutput(ctx, name, args...)
	return err
}

// toolOutput is tool, also returning the tool's standard output.
func (h *helper) toolOutput(ctx context.Context, name string, args ...string) (string, error) {
	bin := ""
	for _, d := range strings.Split(toolPath, ":") {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode().IsRegular() {
			bin = filepath.Join(d, name)
			break
		}
	}
	if bin == "" {
		return "", fmt.Errorf("%s not found in %s", name, toolPath)
	}
	argv := append([]string{bin}, args...)
	if h.opt.Wrap != nil {
		argv = h.opt.Wrap(bin, args...)
	}
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + toolPath, "LC_ALL=C"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stdout.String()+stderr.String()))
	}
	return stdout.String(), nil
}

// getentNotFound is getent's exit status for a key the database lacks.
const getentNotFound = 2

// nssNames looks a key (a name or a numeric ID) up with getent ARGS
// (e.g. passwd KEY, group KEY, -s SERVICE passwd KEY), as useradd and groupadd do: local files
// and every directory service the host uses (LDAP, SSSD). It returns the
// names of the entries found; none when getent says the key is unknown.
func (h *helper) nssNames(ctx context.Context, args ...string) ([]string, error) {
	out, err := h.toolOutput(ctx, "getent", args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == getentNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up through NSS: %w", err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok {
			names = append(names, name)
		}
	}
	return names, nil
}

// processes lists the live processes whose real or effective UID is uid
// (zombies are dead already; their parent reaps them).
func processes(uid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue // gone meanwhile
		}
		if processOf(string(b), uid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// processOf reports whether /proc/PID/status text is of a live process
// whose real or effective UID is uid.
func processOf(status string, uid int) bool {
	want := strconv.Itoa(uid)
	live, mine := true, false
	for _, l := range strings.Split(status, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "State:":
			live = f[1] != "Z" && f[1] != "X"
		case len(f) >= 3 && f[0] == "Uid:":
			mine = f[1] == want || f[2] == want
		}
	}
	return live && mine
}

// nssHasID reports whether some user or group has id through NSS.
func (h *helper) nssHasID(ctx context.Context, id int) (bool, error) {
	for _, db := range []string{"passwd", "group"} {
		names, err := h.nssNames(ctx, db, strconv.Itoa(id))
		if err != nil || len(names) > 0 {
			return len(names) > 0, err
		}
	}
	return false, nil
}

// nssServices are the services of the passwd line of /etc/nsswitch.conf
// (the actions in brackets dropped); "files" without one.
func (h *helper) nssServices() ([]string, error) {
	b, err := os.ReadFile(h.path("/etc/nsswitch.conf"))
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"files"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read /etc/nsswitch.conf: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		db, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(db) != "passwd" {
			continue
		}
		var out []string
		for _, f := range strings.Fields(rest) {
			if !strings.HasPrefix(f, "[") && !strings.HasSuffix(f, "]") && !strings.Contains(f, "=") && !strings.HasPrefix(f, "#") {
				out = append(out, f)
			}
		}
		return out, nil
	}
	return []string{"files"}, nil
}

// uidOwners are the names every NSS service of passwd has for uid, each
// asked on its own (getent -s), since a plain lookup answers only the
// first, which hides a directory user behind a local one.
func (h *helper) uidOwners(ctx context.Context, uid int) ([]string, error) {
	services, err := h.nssServices()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range services {
		n, err := h.nssNames(ctx, "-s", s, "passwd", strconv.Itoa(uid))
		if err != nil {
			return nil, err
		}
		names = append(names, n...)
	}
	return names, nil
}

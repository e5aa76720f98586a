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
	bin := ""
	for _, d := range strings.Split(toolPath, ":") {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode().IsRegular() {
			bin = filepath.Join(d, name)
			break
		}
	}
	if bin == "" {
		return fmt.Errorf("%s not found in %s", name, toolPath)
	}
	argv := append([]string{bin}, args...)
	if h.opt.Wrap != nil {
		argv = h.opt.Wrap(bin, args...)
	}
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + toolPath, "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
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

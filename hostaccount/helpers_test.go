package hostaccount_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/hostaccount"
	"github.com/jitssh/jitssh/internal/netnstest"
)

// target is a private root and the helper's options pointed at it.
type target struct {
	p   *netnstest.PrivateRoot
	opt hostaccount.Options
}

// created is the fixed clock of the tests' records.
var created = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// newTarget makes a test host with a private /etc and /home. The helper's
// tools run inside it; its own file access goes through /proc/PID/root.
func newTarget(t *testing.T) *target {
	t.Helper()
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel", "visudo", "setpriv", "sudo"} {
		if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
			if _, err := os.Stat("/usr/bin/" + tool); err != nil {
				msg := "hostaccount: " + tool + " not installed (make deps: apt-get install passwd sudo util-linux)"
				if os.Getenv("CI") == "true" {
					t.Fatal(msg)
				}
				t.Skip(msg)
			}
		}
	}
	p := netnstest.New(t, "acct").PrivateRoot(t)
	return &target{p: p, opt: hostaccount.Options{Root: p.Path(""), Wrap: p.Argv, MountInfo: "/proc/" + itoa(p.PID) + "/mountinfo",
		Now: func() time.Time { return created }}}
}

// call runs the helper with op and req (a value to marshal, or a string
// sent as it is) and decodes its one answer strictly.
func (tg *target) call(t *testing.T, op string, req any) (api.AccountAnswer, int) {
	t.Helper()
	body, ok := req.(string)
	if !ok {
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := hostaccount.Run(ctx, op, strings.NewReader(body), &out, tg.opt)
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	var ans api.AccountAnswer
	if err := dec.Decode(&ans); err != nil || dec.More() {
		t.Fatalf("%s answer %q is not one JSON object: %v", op, out.String(), err)
	}
	if (code == api.AccountExitOK) != ans.OK || (!ans.OK && (ans.Code == "" || ans.Error == "")) {
		t.Fatalf("%s exit %d with answer %+v", op, code, ans)
	}
	return ans, code
}

// mustOK calls and fails the test unless the answer is ok.
func (tg *target) mustOK(t *testing.T, op string, req any) api.AccountAnswer {
	t.Helper()
	ans, _ := tg.call(t, op, req)
	if !ans.OK {
		t.Fatalf("%s %+v: %s: %s", op, req, ans.Code, ans.Error)
	}
	return ans
}

// mustFail calls and fails the test unless the answer has code.
func (tg *target) mustFail(t *testing.T, op string, req any, code string) api.AccountAnswer {
	t.Helper()
	ans, _ := tg.call(t, op, req)
	if ans.OK || ans.Code != code {
		t.Fatalf("%s %+v answered %+v, want code %s", op, req, ans, code)
	}
	return ans
}

// read is the content of the file the target sees at inside, "" if none.
func (tg *target) read(t *testing.T, inside string) string {
	t.Helper()
	b, err := os.ReadFile(tg.p.Path(inside))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// exists reports whether the target has a file at inside.
func (tg *target) exists(t *testing.T, inside string) bool {
	t.Helper()
	_, err := os.Lstat(tg.p.Path(inside))
	return err == nil
}

// stat is the mode and owner UID of the target's file at inside.
func (tg *target) stat(t *testing.T, inside string) (os.FileMode, int) {
	t.Helper()
	fi, err := os.Lstat(tg.p.Path(inside))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), int(fi.Sys().(*syscall.Stat_t).Uid)
}

// createReq is a valid create for login and grant in 71000-74999: not
// jitd's default range, which the e2e tests' accounts take, since removal
// kills by UID on the whole machine and the tests' private roots share it.
func createReq(login, grant string) api.AccountRequest {
	return api.AccountRequest{Login: login, Grant: grant, UIDMin: 71000, UIDMax: 74999, Shell: "/bin/bash"}
}

// hasEntry reports whether the target's database (passwd, group, shadow)
// has a line for name.
func (tg *target) hasEntry(t *testing.T, db, name string) bool {
	t.Helper()
	return strings.Contains("\n"+tg.read(t, "/etc/"+db), "\n"+name+":")
}

// itoa is strconv.Itoa, short.
func itoa(n int) string { return strconv.Itoa(n) }

package hostaccount_test

import (
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
)

// TestCreate: real groupadd, useradd and visudo make the account as the
// request says, or refuse it with the contract's code and leave the host
// as it was.
func TestCreate(t *testing.T) {
	tg := newTarget(t)
	tests := []struct {
		name     string
		req      func(api.AccountRequest) api.AccountRequest
		wantCode string // "" = created
		wantSudo string // in `sudo -l -U login`; "" = no sudoers file
	}{
		{name: "groups and a sudo command", req: func(r api.AccountRequest) api.AccountRequest {
			r.Groups, r.Sudo = []string{"adm", "users"}, []string{"/usr/bin/id -u", "/usr/bin/systemctl restart nginx"}
			return r
		}, wantSudo: "(root) NOPASSWD: /usr/bin/id -u, /usr/bin/systemctl restart nginx"},
		{name: "sudo all", req: func(r api.AccountRequest) api.AccountRequest { r.Sudo = []string{"ALL"}; return r }, wantSudo: "(ALL : ALL) NOPASSWD: ALL"},
		{name: "no sudo", req: func(r api.AccountRequest) api.AccountRequest { r.Shell = "/bin/sh"; return r }},
		{name: "shell not in /etc/shells", req: func(r api.AccountRequest) api.AccountRequest { r.Shell = "/usr/sbin/nologin"; return r }, wantCode: api.AccountCodeBadShell},
		{name: "unknown group", req: func(r api.AccountRequest) api.AccountRequest { r.Groups = []string{"nosuchgroup"}; return r }, wantCode: api.AccountCodeUnknownGroup},
		// Passes the parser (a clean absolute path, no sudoers syntax);
		// visudo refuses sudoedit given with a path.
		{name: "sudo rule visudo refuses", req: func(r api.AccountRequest) api.AccountRequest {
			r.Sudo = []string{"/usr/bin/id", "/usr/bin/sudoedit /etc/hosts"}
			return r
		}, wantCode: api.AccountCodeSudoRejected},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			login := "jit-create-" + string(rune('a'+i))
			req := tt.req(createReq(login, "req_create"))
			before := tg.read(t, "/etc/passwd") + tg.read(t, "/etc/group")
			beforeSudoers := tg.p.Run(t, "ls", "-A", "/etc/sudoers.d")
			beforeList := tg.mustOK(t, "list", struct{}{})
			if tt.wantCode != "" {
				ans := tg.mustFail(t, "create", req, tt.wantCode)
				t.Logf("refused: %s", ans.Error)
				if after := tg.read(t, "/etc/passwd") + tg.read(t, "/etc/group"); after != before {
					t.Fatalf("refused create (%s) changed passwd or group", ans.Error)
				}
				if after := tg.p.Run(t, "ls", "-A", "/etc/sudoers.d"); after != beforeSudoers {
					t.Fatalf("refused create left sudoers.d %q, was %q", after, beforeSudoers)
				}
				if after := tg.mustOK(t, "list", struct{}{}); tg.exists(t, "/home/"+login) || len(after.Accounts) != len(beforeList.Accounts) || after.HighWater != beforeList.HighWater {
					t.Fatal("refused create left a home or a record")
				}
				return
			}
			ans := tg.mustOK(t, "create", req)
			if len(ans.Accounts) != 1 || ans.Accounts[0].Login != login || ans.Accounts[0].UID != 71000+i || ans.HighWater != 71000+i || !ans.Accounts[0].Created.Equal(created) {
				t.Fatalf("answer %+v", ans)
			}
			id := tg.p.Run(t, "id", login)
			for _, g := range append([]string{"jitssh-ephemeral", login}, req.Groups...) {
				if !strings.Contains(id, "("+g+")") {
					t.Errorf("id %s = %q lacks group %s", login, id, g)
				}
			}
			if !strings.Contains(tg.read(t, "/etc/passwd"), login+":x:"+itoa(71000+i)+":"+itoa(71000+i)+":jitssh req_create:/home/"+login+":"+req.Shell+"\n") {
				t.Errorf("passwd entry of %s wrong:\n%s", login, tg.read(t, "/etc/passwd"))
			}
			if !strings.Contains(tg.read(t, "/etc/shadow"), login+":*:") {
				t.Errorf("shadow entry of %s is not password \"*\"", login)
			}
			if mode, uid := tg.stat(t, "/home/"+login); !mode.IsDir() || mode.Perm() != 0o700 || uid != 71000+i {
				t.Errorf("home of %s: mode %v owner %d", login, mode, uid)
			}
			checkSudo(t, tg, login, tt.wantSudo)
		})
	}
}

// checkSudo checks login's sudoers file (mode 0440, root's, accepted by
// visudo) and that sudo lists want; want "" means no file.
func checkSudo(t *testing.T, tg *target, login, want string) {
	t.Helper()
	file := "/etc/sudoers.d/" + api.AccountSudoersName(login)
	if want == "" {
		if tg.exists(t, file) {
			t.Errorf("%s exists without sudo", file)
		}
		return
	}
	if mode, uid := tg.stat(t, file); mode.Perm() != 0o440 || uid != 0 || !mode.IsRegular() {
		t.Errorf("%s: mode %v owner %d", file, mode, uid)
	}
	tg.p.Run(t, "visudo", "-cf", file)
	if out := tg.p.Run(t, "sudo", "-l", "-U", login); !strings.Contains(out, want) {
		t.Errorf("sudo -l -U %s lacks %q:\n%s", login, want, out)
	}
}

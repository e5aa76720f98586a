package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// The provisioning login of ephemeral accounts (issue 13). jitd's bastion
// connects to a target as OpenSSH user root with a target-CA certificate
// whose only principal is ProvisionPrincipalLogin+"@"+HOST, whose
// force-command is AccountHelperPath, valid ProvisionCertLifetime; the
// helper then does exactly one AccountOp.
const (
	// ProvisionPrincipalLogin is the login part of the provisioning
	// principal "jitssh-provision@HOST". No policy role may use it.
	ProvisionPrincipalLogin = "jitssh-provision"
	// AccountHelperPath is the wrapper jit host join installs on a target;
	// it is the provisioning certificate's force-command and the command=
	// of the principals line that admits it.
	AccountHelperPath = "/usr/local/sbin/jitssh-account"
	// ProvisionCertLifetime is how long a provisioning certificate is
	// valid (plus the usual small backdating).
	ProvisionCertLifetime = time.Minute
	// AccountStateDir is the helper's state directory on a target (mode
	// 0700); its record is AccountStateFile inside it.
	AccountStateDir = "/var/lib/jitssh/accounts"
	// AccountStateFile is the name of the helper's record in
	// AccountStateDir: the UID high-water mark and each managed account.
	AccountStateFile = "state.json"
	// AccountManagedGroup is the group every ephemeral account is in; the
	// helper touches only accounts in this group and in its record.
	AccountManagedGroup = "jitssh-ephemeral"
	// AccountLoginPrefix starts every ephemeral login; no non-ephemeral
	// role may use a login with this prefix.
	AccountLoginPrefix = "jit-"
	// AccountMaxLoginLength is the longest ephemeral login, in bytes.
	AccountMaxLoginLength = 32
	// AccountMaxRequestBytes bounds the one JSON request on stdin.
	AccountMaxRequestBytes = 64 << 10
	// AccountMinUID is the lowest UID a request may name: the range never
	// reaches the system accounts.
	AccountMinUID = 1000
	// AccountMaxUID is the highest UID a request may name (below the
	// 32-bit (uid_t)-1 and the signed-overflow edge some tools have).
	AccountMaxUID = 1<<31 - 2
)

// The operations of the helper: SSH_ORIGINAL_COMMAND is exactly one of them.
const (
	// AccountOpCreate creates the ephemeral account of a grant (idempotent
	// for the same login and grant).
	AccountOpCreate = "create"
	// AccountOpRemove kills every process of the account and removes it,
	// its home, sudoers file, mail spool, crontab and at jobs (idempotent
	// when already gone).
	AccountOpRemove = "remove"
	// AccountOpReap removes every managed account not in Keep.
	AccountOpReap = "reap"
	// AccountOpList lists the managed accounts with their process counts.
	AccountOpList = "list"
)

// Exit codes of the helper: AccountExitOK when the answer's OK is true,
// AccountExitFailed when it is false, AccountExitUsage when the operation
// itself was refused (then the answer still says why, code bad_request).
const (
	AccountExitOK     = 0
	AccountExitFailed = 1
	AccountExitUsage  = 2
)

// Codes of a failed AccountAnswer. Like the other codes they are stable.
const (
	// AccountCodeBadRequest: the operation or the JSON request was refused
	// by ParseAccountRequest (the Error names the field).
	AccountCodeBadRequest = "bad_request"
	// AccountCodeNameExists: the login, its group or its home already
	// exists on the host and is not the helper's; nothing is adopted.
	AccountCodeNameExists = "name_exists"
	// AccountCodeUIDRangeExhausted: no UID of the range is above the host's
	// high-water mark and free.
	AccountCodeUIDRangeExhausted = "uid_range_exhausted"
	// AccountCodeSudoRejected: visudo -cf refused the sudoers rule; nothing
	// was written.
	AccountCodeSudoRejected = "sudo_rejected"
	// AccountCodeUnknownGroup: a supplementary group does not exist on the
	// host (the helper never creates one).
	AccountCodeUnknownGroup = "unknown_group"
	// AccountCodeBadShell: the shell is not listed in the host's /etc/shells.
	AccountCodeBadShell = "bad_shell"
	// AccountCodeNotManaged: remove of an account the helper did not
	// create, or whose UID is not the one jitd recorded.
	AccountCodeNotManaged = "not_managed"
	// AccountCodeStillRunning: processes of the UID survived the kill
	// loop; the removal is to be retried.
	AccountCodeStillRunning = "still_running"
	// AccountCodeFailed: anything else; the Error says what.
	AccountCodeFailed = "failed"
)

// AccountRequest is the one JSON object the helper reads on stdin. Which
// fields an operation takes is checked by ParseAccountRequest; the others
// must be absent.
type AccountRequest struct {
	Login  string   `json:"login,omitempty"`   // create, remove: the ephemeral login (valid POSIX name, ≤ 32, must start with "jit-")
	Grant  string   `json:"grant,omitempty"`   // create, remove: the request ID the account is for
	UID    int      `json:"uid,omitempty"`     // remove: the UID jitd recorded (the helper refuses a mismatch)
	UIDMin int      `json:"uid_min,omitempty"` // create: lowest UID jitd allows (its mirrored high-water mark + 1, or the range start)
	UIDMax int      `json:"uid_max,omitempty"` // create: end of the reserved range (inclusive)
	Groups []string `json:"groups,omitempty"`  // create: supplementary groups (must exist on the host; never created)
	Shell  string   `json:"shell,omitempty"`   // create: absolute path listed in /etc/shells
	Sudo   []string `json:"sudo,omitempty"`    // create: nil/empty = no sudo; ["ALL"] = all; else absolute command lines
	Keep   []string `json:"keep,omitempty"`    // reap: managed logins that must stay; every other managed account is removed
}

// AccountAnswer is the one JSON object the helper writes on stdout.
type AccountAnswer struct {
	OK        bool          `json:"ok"`
	Code      string        `json:"code,omitempty"`     // on failure, one of the AccountCode* constants
	Error     string        `json:"error,omitempty"`    // human-readable, bounded
	Accounts  []AccountInfo `json:"accounts,omitempty"` // create: the one created; list: all managed; remove/reap: those removed
	HighWater int           `json:"high_water"`         // the host's UID high-water mark after the operation
}

// AccountInfo is one managed account.
type AccountInfo struct {
	Login     string    `json:"login"`
	UID       int       `json:"uid"`
	Grant     string    `json:"grant"`
	Created   time.Time `json:"created"`
	Processes int       `json:"processes"` // live processes of the UID (list)
}

// Limits of a request beyond its size, so that no field makes the helper's
// work (or a sudoers line) unbounded.
const (
	maxAccountGroups   = 32
	maxAccountSudo     = 64
	maxAccountKeep     = 4096
	maxSudoCommandLen  = 1024
	maxAccountShellLen = 256
	maxAccountGrantLen = 64
	maxPOSIXNameLen    = 32
)

// sudoForbidden are the characters refused in a sudo command line: each
// has a meaning in sudoers syntax (list separator, host/runas separators,
// escapes, comments, wildcards and regular expressions that would widen
// the rule beyond the command the policy names).
const sudoForbidden = ",:=\\#*?[]!^$\"'"

// ParseAccountRequest reads the request of operation op from r: op must be
// one of the AccountOp* constants, r exactly one JSON object of at most
// AccountMaxRequestBytes with no unknown fields and nothing after it, and
// every field valid for op (those op does not take must be absent). The
// error names the bad operation, field or value; the helper answers it
// with AccountCodeBadRequest.
func ParseAccountRequest(op string, r io.Reader) (AccountRequest, error) {
	var req AccountRequest
	switch op {
	case AccountOpCreate, AccountOpRemove, AccountOpReap, AccountOpList:
	default:
		return req, fmt.Errorf("unknown operation %.40q (want create, remove, reap or list)", op)
	}
	data, err := io.ReadAll(io.LimitReader(r, AccountMaxRequestBytes+1))
	if err != nil {
		return req, fmt.Errorf("read request: %w", err)
	}
	if len(data) > AccountMaxRequestBytes {
		return req, fmt.Errorf("request is longer than %d bytes", AccountMaxRequestBytes)
	}
	if err := checkAccountKeys(data); err != nil {
		return req, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return AccountRequest{}, fmt.Errorf("request is not one JSON object of the expected shape: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return AccountRequest{}, errors.New("request has data after its JSON object")
	}
	if err := req.check(op); err != nil {
		return AccountRequest{}, fmt.Errorf("%s request: %w", op, err)
	}
	req.Groups, req.Sudo, req.Keep = nilIfEmpty(req.Groups), nilIfEmpty(req.Sudo), nilIfEmpty(req.Keep)
	return req, nil
}

// accountKey reports whether key is a member name of an AccountRequest,
// exactly.
func accountKey(key string) bool {
	switch key {
	case "login", "grant", "uid", "uid_min", "uid_max", "groups", "shell", "sudo", "keep":
		return true
	}
	return false
}

// checkAccountKeys refuses what encoding/json would quietly accept: a
// member name in another case ("Login" sets Login) and a repeated member
// (the last one wins), either of which could make two readers of one
// request disagree.
func checkAccountKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("request is not one JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("request is not one JSON object: %w", err)
		}
		key, _ := tok.(string)
		if !accountKey(key) || seen[key] {
			return fmt.Errorf("request member %.40q is unknown or repeated", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("request is not one JSON object: %w", err)
		}
	}
	return nil
}

// nilIfEmpty makes an empty list nil, so that [] and an absent member are
// one request.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// check applies the per-operation field rules.
func (req AccountRequest) check(op string) error {
	var takes map[string]bool
	switch op {
	case AccountOpCreate:
		takes = map[string]bool{"login": true, "grant": true, "uid_min": true, "uid_max": true, "groups": true, "shell": true, "sudo": true}
		if err := req.checkCreate(); err != nil {
			return err
		}
	case AccountOpRemove:
		takes = map[string]bool{"login": true, "grant": true, "uid": true}
		if err := req.checkIdentity(); err != nil {
			return err
		}
		if req.UID < AccountMinUID || req.UID > AccountMaxUID {
			return fmt.Errorf("uid %d is outside %d-%d", req.UID, AccountMinUID, AccountMaxUID)
		}
	case AccountOpReap:
		takes = map[string]bool{"keep": true}
		if len(req.Keep) > maxAccountKeep {
			return fmt.Errorf("keep lists %d logins, more than %d", len(req.Keep), maxAccountKeep)
		}
		for _, l := range req.Keep {
			if err := ValidAccountLogin(l); err != nil {
				return fmt.Errorf("keep: %w", err)
			}
		}
	case AccountOpList:
		takes = map[string]bool{}
	}
	for field, set := range req.setFields() {
		if set && !takes[field] {
			return fmt.Errorf("field %s is not taken by %s", field, op)
		}
	}
	return nil
}

// setFields says which fields carry a value.
func (req AccountRequest) setFields() map[string]bool {
	return map[string]bool{
		"login": req.Login != "", "grant": req.Grant != "", "uid": req.UID != 0,
		"uid_min": req.UIDMin != 0, "uid_max": req.UIDMax != 0, "groups": len(req.Groups) > 0,
		"shell": req.Shell != "", "sudo": len(req.Sudo) > 0, "keep": len(req.Keep) > 0,
	}
}

// checkIdentity checks login and grant, which create and remove both need.
func (req AccountRequest) checkIdentity() error {
	if err := ValidAccountLogin(req.Login); err != nil {
		return err
	}
	if req.Grant == "" || len(req.Grant) > maxAccountGrantLen {
		return fmt.Errorf("grant %.80q is empty or longer than %d bytes", req.Grant, maxAccountGrantLen)
	}
	for _, c := range req.Grant {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("grant %.80q contains %q", req.Grant, c)
		}
	}
	return nil
}

// checkCreate checks the fields of a create.
func (req AccountRequest) checkCreate() error {
	if err := req.checkIdentity(); err != nil {
		return err
	}
	if req.UIDMin < AccountMinUID || req.UIDMax > AccountMaxUID || req.UIDMin > req.UIDMax {
		return fmt.Errorf("uid range %d-%d is not within %d-%d, lowest first", req.UIDMin, req.UIDMax, AccountMinUID, AccountMaxUID)
	}
	if len(req.Groups) > maxAccountGroups {
		return fmt.Errorf("groups lists %d groups, more than %d", len(req.Groups), maxAccountGroups)
	}
	seen := map[string]bool{}
	for _, g := range req.Groups {
		if err := validPOSIXName("group", g); err != nil {
			return err
		}
		if seen[g] || g == AccountManagedGroup || g == req.Login {
			return fmt.Errorf("group %q is repeated, the managed group or the account's own group", g)
		}
		seen[g] = true
	}
	if err := validShell(req.Shell); err != nil {
		return err
	}
	return ValidSudo(req.Sudo)
}

// ValidAccountLogin reports whether s is an ephemeral login: a POSIX user
// name (lower-case letters, digits, '_', '-', not starting with '-'; no
// '.', see AccountSudoersName) of at most AccountMaxLoginLength bytes starting with
// AccountLoginPrefix.
func ValidAccountLogin(s string) error {
	if err := validPOSIXName("login", s); err != nil {
		return err
	}
	if !strings.HasPrefix(s, AccountLoginPrefix) || len(s) == len(AccountLoginPrefix) {
		return fmt.Errorf("login %q does not start with %q and a name", s, AccountLoginPrefix)
	}
	// AccountSudoersName drops dots: jit-a.b and jit-ab would share a file.
	if strings.Contains(s, ".") {
		return fmt.Errorf("login %q contains '.', which the sudoers file name cannot keep", s)
	}
	return nil
}

// validPOSIXName is the portable user and group name of shadow-utils'
// default: [a-z_][a-z0-9_.-]*, at most 32 bytes (no trailing '$': no
// machine accounts here).
func validPOSIXName(kind, s string) error {
	if s == "" || len(s) > maxPOSIXNameLen {
		return fmt.Errorf("%s %.80q is empty or longer than %d bytes", kind, s, maxPOSIXNameLen)
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.')
		if !ok {
			return fmt.Errorf("%s %q is not a POSIX name ([a-z_][a-z0-9_.-]*): %q at byte %d", kind, s, c, i)
		}
	}
	return nil
}

// validShell checks that the shell is a clean absolute path of printable
// ASCII (whether /etc/shells lists it is the helper's check).
func validShell(s string) error {
	if s == "" || len(s) > maxAccountShellLen || !strings.HasPrefix(s, "/") || path.Clean(s) != s || s == "/" {
		return fmt.Errorf("shell %.80q is not a clean absolute path of at most %d bytes", s, maxAccountShellLen)
	}
	for _, c := range s {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("shell %q contains %q", s, c)
		}
	}
	return nil
}

// ValidSudo reports whether cmds may go into a sudoers rule: empty (no
// sudo), exactly ["ALL"], or at most 64 command lines, each a clean
// absolute path followed by optional arguments separated by single spaces,
// of printable ASCII without any character that has a meaning in sudoers
// syntax (, : = \ # and quotes), wildcards or a regular expression (* ? [
// ] ! ^ $), at most 1024 bytes.
func ValidSudo(cmds []string) error {
	if len(cmds) > maxAccountSudo {
		return fmt.Errorf("sudo lists %d commands, more than %d", len(cmds), maxAccountSudo)
	}
	for _, c := range cmds {
		if c == "ALL" {
			if len(cmds) != 1 {
				return errors.New(`sudo "ALL" must be the only entry`)
			}
			continue
		}
		if err := validSudoCommand(c); err != nil {
			return err
		}
	}
	return nil
}

// validSudoCommand checks one command line of ValidSudo.
func validSudoCommand(c string) error {
	if c == "" || len(c) > maxSudoCommandLen {
		return fmt.Errorf("sudo command %.80q is empty or longer than %d bytes", c, maxSudoCommandLen)
	}
	for _, r := range c {
		if r < ' ' || r > '~' || strings.ContainsRune(sudoForbidden, r) {
			return fmt.Errorf("sudo command %.80q contains %q", c, r)
		}
	}
	words := strings.Split(c, " ")
	for _, w := range words {
		if w == "" {
			return fmt.Errorf("sudo command %.80q has leading, trailing or doubled spaces", c)
		}
	}
	cmd := words[0]
	if !strings.HasPrefix(cmd, "/") || path.Clean(cmd) != cmd || cmd == "/" {
		return fmt.Errorf("sudo command %.80q does not start with a clean absolute path", c)
	}
	return nil
}

// AccountSudoersName is the name of login's file in /etc/sudoers.d: sudo
// skips names with a dot (and those ending in '~'), so the dots are dropped.
func AccountSudoersName(login string) string {
	return "jitssh-" + strings.ReplaceAll(login, ".", "")
}

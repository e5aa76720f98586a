package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxJustificationLength is the most characters (runes) a justification may have.
const MaxJustificationLength = 1000

// Request is what an engineer asks for.
type Request struct {
	User, Host, Login string
	// TTL is the certificate lifetime asked for; 0 means the role's default.
	TTL           time.Duration
	Justification string
	// BreakGlass asks to skip approval in an emergency.
	BreakGlass bool
	// Ephemeral asks for a one-time account: Login is then the login the
	// caller made with EphemeralLogin, and only ephemeral roles (Account
	// set) can allow it. Without it, ephemeral roles allow nothing.
	Ephemeral bool
}

// Outcome is the verdict of Evaluate.
type Outcome int

// Outcomes of Evaluate. The zero value is Deny, so a forgotten Decision
// fails closed.
const (
	Deny Outcome = iota
	Allow
	NeedsApproval
)

// String returns "deny", "allow" or "needs_approval".
func (o Outcome) String() string {
	switch o {
	case Deny:
		return "deny"
	case Allow:
		return "allow"
	case NeedsApproval:
		return "needs_approval"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Reason is a stable, machine-readable code explaining a Decision or a
// CanApprove answer; audit stores it as the event code.
type Reason string

// Reason codes. They are part of the audit format: never rename one.
const (
	ReasonAllowed               Reason = "allowed"
	ReasonAutoApproved          Reason = "auto_approved"
	ReasonApprovalRequired      Reason = "approval_required"
	ReasonBreakGlass            Reason = "break_glass"
	ReasonUnknownUser           Reason = "unknown_user"
	ReasonUnknownHost           Reason = "unknown_host"
	ReasonUnknownRole           Reason = "unknown_role"
	ReasonInvalidLogin          Reason = "invalid_login"
	ReasonInvalidHost           Reason = "invalid_host"
	ReasonHostNotAllowed        Reason = "host_not_allowed"
	ReasonLoginNotAllowed       Reason = "login_not_allowed"
	ReasonTTLInvalid            Reason = "ttl_invalid"
	ReasonTTLTooLong            Reason = "ttl_too_long"
	ReasonJustificationMissing  Reason = "justification_missing"
	ReasonJustificationTooShort Reason = "justification_too_short"
	ReasonJustificationTooLong  Reason = "justification_too_long"
	ReasonJustificationInvalid  Reason = "justification_invalid"
	ReasonTicketMismatch        Reason = "ticket_mismatch"
	ReasonAdminAccessForbidden  Reason = "admin_access_forbidden"
	ReasonBreakGlassNotAllowed  Reason = "break_glass_not_allowed"
	ReasonSelfApproval          Reason = "self_approval"
	ReasonNotApprover           Reason = "not_approver"
	ReasonNoRole                Reason = "no_role"
)

// Decision is the result of Evaluate. Deny decisions carry only Outcome,
// Reason, Message and, when a role was involved, Role. Allow and
// NeedsApproval decisions carry everything needed to sign the certificate.
type Decision struct {
	Outcome Outcome
	Reason  Reason
	// Message is human-readable and names the offending field and value.
	Message string
	// Role is the role that decided (or, for a deny, the role that came
	// closest to allowing the request).
	Role string
	// Principals is exactly ["LOGIN@HOST"] when not denied.
	Principals []string
	TTL        time.Duration
	// Extensions always include permit-pty; CriticalOptions hold
	// source-address and force-command only when the role sets them. Both
	// maps are fresh for every Decision.
	Extensions      map[string]string
	CriticalOptions map[string]string
	RecordInput     bool
	// Approval is a copy of the role's approval rule (nil if none).
	Approval              *ApprovalRule
	RequestTTL, RedeemTTL time.Duration
	// BreakGlass is true when approval was skipped by breaking the glass;
	// such grants must be reported loudly.
	BreakGlass bool
	// Account is a copy of the deciding role's account rule when the
	// grant is for an ephemeral account (nil otherwise).
	Account *AccountRule
}

// stage orders how far a role got in Evaluate, so that a deny reports the
// most useful reason: that of the candidate role that got furthest.
type stage int

const (
	stageHost stage = iota
	stageLogin
	stageTTL
	stageJustification
	stageBreakGlass
	stagePassed
)

// verdict is one role's answer; rank orders successful verdicts (lower is
// preferred).
type verdict struct {
	stage   stage
	reason  Reason
	message string
	ttl     time.Duration
	rank    int
}

// Evaluate decides req at time now. It checks, in order: the login and host
// names, that user and host exist, that admins may request access, the TTL
// sign; then each role the user's groups grant, in file order, against host,
// login, TTL, justification and break-glass. Among roles that accept the
// request it prefers one that allows without approval, then auto-approval,
// then break-glass, then one that needs approval, the first in file order on
// ties. If none accepts, the deny reports the role that got furthest.
func (p *Policy) Evaluate(req Request, now time.Time) Decision {
	if err := ValidName("login", req.Login); err != nil {
		return deny(ReasonInvalidLogin, "", "invalid login: %v", err)
	}
	if err := checkRequestLogin(req); err != nil {
		return deny(ReasonInvalidLogin, "", "invalid login: %v", err)
	}
	if err := ValidName("host", req.Host); err != nil {
		return deny(ReasonInvalidHost, "", "invalid host: %v", err)
	}
	user, ok := p.Users[req.User]
	if !ok {
		return deny(ReasonUnknownUser, "", "unknown user %q", req.User)
	}
	host, ok := p.Hosts[req.Host]
	if !ok {
		return deny(ReasonUnknownHost, "", "unknown host %q", req.Host)
	}
	if p.IsAdmin(req.User) && !p.Admins.MayRequestAccess {
		return deny(ReasonAdminAccessForbidden, "", "user %q is an admin and admins may not request host access (admins.may_request_access is false)", req.User)
	}
	if req.TTL < 0 {
		return deny(ReasonTTLInvalid, "", "ttl %s is negative", formatDuration(req.TTL))
	}
	if req.TTL%time.Second != 0 {
		// Certificates count in whole seconds.
		return deny(ReasonTTLInvalid, "", "ttl %s is not a whole number of seconds", formatDuration(req.TTL))
	}

	bestOK, bestFail := -1, -1
	var okV, failV verdict
	for i := range p.Roles {
		role := &p.Roles[i]
		if !intersects(user.Groups, role.Groups) {
			continue
		}
		v := role.check(req, host, now)
		if v.stage == stagePassed {
			if bestOK < 0 || v.rank < okV.rank {
				bestOK, okV = i, v
			}
			continue
		}
		if bestFail < 0 || v.stage > failV.stage {
			bestFail, failV = i, v
		}
	}
	switch {
	case bestOK >= 0:
		return p.Roles[bestOK].grant(req, okV)
	case bestFail >= 0:
		return deny(failV.reason, p.Roles[bestFail].Name, "%s", failV.message)
	}
	return deny(ReasonNoRole, "", "user %q is in no role (groups %s)", req.User, quoteList(user.Groups))
}

func (r *Role) check(req Request, host Host, now time.Time) verdict {
	if !r.Hosts.Matches(host) {
		return verdict{stage: stageHost, reason: ReasonHostNotAllowed,
			message: fmt.Sprintf("host %q is not allowed for user %q by any role", req.Host, req.User)}
	}
	if req.Ephemeral != (r.Account != nil) || !req.Ephemeral && !slices.Contains(r.Logins, req.Login) {
		if req.Ephemeral {
			return verdict{stage: stageLogin, reason: ReasonLoginNotAllowed,
				message: fmt.Sprintf("no role gives user %q an ephemeral account on host %q (name a login with --login)", req.User, req.Host)}
		}
		return verdict{stage: stageLogin, reason: ReasonLoginNotAllowed,
			message: fmt.Sprintf("login %q is not allowed on host %q for user %q by any role", req.Login, req.Host, req.User)}
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = r.TTL
	}
	if ttl <= 0 {
		return verdict{stage: stageTTL, reason: ReasonTTLInvalid,
			message: fmt.Sprintf("ttl %s of role %q is not positive", formatDuration(ttl), r.Name)}
	}
	if ttl > r.MaxTTL {
		return verdict{stage: stageTTL, reason: ReasonTTLTooLong,
			message: fmt.Sprintf("ttl %s exceeds role %q max_ttl %s", formatDuration(ttl), r.Name, formatDuration(r.MaxTTL))}
	}
	if reason, msg := r.Justification.check(r.Name, req.Justification); reason != "" {
		return verdict{stage: stageJustification, reason: reason, message: msg}
	}
	if req.BreakGlass && !r.BreakGlass {
		return verdict{stage: stageBreakGlass, reason: ReasonBreakGlassNotAllowed,
			message: fmt.Sprintf("role %q does not allow break_glass", r.Name)}
	}
	v := verdict{stage: stagePassed, ttl: ttl}
	switch {
	case r.Approval == nil:
		v.reason, v.rank = ReasonAllowed, 0
	case r.Approval.AutoApprove.matches(req.Justification, now):
		v.reason, v.rank = ReasonAutoApproved, 1
	case req.BreakGlass:
		v.reason, v.rank = ReasonBreakGlass, 2
	default:
		v.reason, v.rank = ReasonApprovalRequired, 3
	}
	return v
}

func (j JustificationRule) check(role, text string) (Reason, string) {
	trimmed := strings.TrimSpace(text)
	n := utf8.RuneCountInString(trimmed)
	switch {
	case trimmed == "":
		return ReasonJustificationMissing, "justification is required"
	case n < j.MinLength:
		return ReasonJustificationTooShort, fmt.Sprintf("justification has %d characters; role %q needs at least %d", n, role, j.MinLength)
	case utf8.RuneCountInString(text) > MaxJustificationLength:
		return ReasonJustificationTooLong, fmt.Sprintf("justification has %d characters; at most %d allowed", utf8.RuneCountInString(text), MaxJustificationLength)
	case !validText(text):
		return ReasonJustificationInvalid, "justification contains control characters or invalid UTF-8"
	case j.Ticket != nil && !j.Ticket.MatchString(text):
		return ReasonTicketMismatch, fmt.Sprintf("justification does not match role %q ticket pattern %q", role, j.Ticket.String())
	}
	return "", ""
}

// validText reports whether s is valid UTF-8 without C0 or C1 control
// characters or DEL (newlines and tabs included: they forge log lines).
func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// matches reports whether a request with this justification, made at now,
// is approved automatically. A nil rule, or one with no condition, never
// matches.
func (a *AutoApproveRule) matches(justification string, now time.Time) bool {
	if a == nil || (a.Ticket == nil && a.Schedule == nil) {
		return false
	}
	if a.Ticket != nil && !a.Ticket.MatchString(justification) {
		return false
	}
	return a.Schedule == nil || a.Schedule.Contains(now)
}

// Matches reports whether host is selected: its name matches one of Names
// (when given) and it has every label in Labels (when given). An empty
// selector matches nothing.
func (s HostSelector) Matches(host Host) bool {
	if len(s.Names) == 0 && len(s.Labels) == 0 {
		return false
	}
	if len(s.Names) > 0 && !slices.ContainsFunc(s.Names, func(pattern string) bool {
		ok, err := path.Match(pattern, host.Name)
		return err == nil && ok
	}) {
		return false
	}
	for k, v := range s.Labels {
		if got, ok := host.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (r *Role) grant(req Request, v verdict) Decision {
	d := Decision{
		Outcome:         Allow,
		Reason:          v.reason,
		Role:            r.Name,
		Principals:      []string{req.Login + "@" + req.Host},
		TTL:             v.ttl,
		Extensions:      map[string]string{"permit-pty": ""},
		CriticalOptions: map[string]string{},
		RecordInput:     r.RecordInput,
		RequestTTL:      r.RequestTTL,
		RedeemTTL:       r.RedeemTTL,
		Account:         r.Account.clone(),
	}
	for _, e := range r.Extensions {
		d.Extensions[e] = ""
	}
	if len(r.SourceAddresses) > 0 {
		d.CriticalOptions["source-address"] = strings.Join(r.SourceAddresses, ",")
	}
	if r.ForceCommand != "" {
		d.CriticalOptions["force-command"] = r.ForceCommand
	}
	if r.Approval != nil {
		a := *r.Approval
		a.Approvers = slices.Clone(a.Approvers)
		if a.AutoApprove != nil {
			// The regexp and schedule are immutable and may be shared.
			auto := *a.AutoApprove
			a.AutoApprove = &auto
		}
		d.Approval = &a
	}
	what := fmt.Sprintf("%s@%s for %s by role %q", req.Login, req.Host, formatDuration(v.ttl), r.Name)
	switch v.reason {
	case ReasonAutoApproved:
		d.Message = "auto-approved " + what
	case ReasonBreakGlass:
		d.BreakGlass = true
		d.Message = "BREAK-GLASS access granted without approval: " + what
	case ReasonApprovalRequired:
		d.Outcome = NeedsApproval
		d.Message = fmt.Sprintf("%s needs approval by %d member(s) of %s", what, r.Approval.Count, quoteList(r.Approval.Approvers))
	default:
		d.Message = "allowed " + what
	}
	return d
}

// checkRequestLogin refuses the provisioning login always, and a login
// of the ephemeral form unless the request is ephemeral (which needs one).
func checkRequestLogin(req Request) error {
	if req.Ephemeral {
		return ValidEphemeralLogin(req.Login)
	}
	return checkRoleLogin(req.Login)
}

func deny(reason Reason, role, format string, args ...any) Decision {
	return Decision{Outcome: Deny, Reason: reason, Role: role, Message: fmt.Sprintf(format, args...)}
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// formatDuration prints 2h0m0s as 2h and 30m0s as 30m.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

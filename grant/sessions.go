package grant

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/policy"
)

// Purposes of reading a recording: the code of its recording.accessed
// event, which SIEM rules match on.
const (
	PurposeReplay = "replay"
	PurposeExport = "export"
	PurposeWatch  = "watch"
)

// Codes of reading sessions and recordings.
const (
	CodeBadPurpose   = "bad_purpose"
	CodeNoRecording  = "no_recording"
	CodeSearchFailed = "search_failed"
)

// SessionsConfig holds what Sessions needs; Store and Policy are required.
type SessionsConfig struct {
	Store *audit.Store
	// Policy returns the policy in force, for the auditor and admin roles.
	Policy func() *policy.Policy
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// Sessions decides who may read which recorded sessions and records every
// access to what was typed and shown: each recording opened and each
// search, before anything is returned. Users see their own sessions;
// auditors and admins see all.
type Sessions struct {
	cfg SessionsConfig
}

// NewSessions returns Sessions, or an error naming the missing configuration.
func NewSessions(cfg SessionsConfig) (*Sessions, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("grant: sessions config: Store is required")
	case cfg.Policy == nil:
		return nil, errors.New("grant: sessions config: Policy is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Sessions{cfg: cfg}, nil
}

func (s *Sessions) mayAudit(user string) bool {
	p := s.cfg.Policy()
	return p.IsAuditor(user) || p.IsAdmin(user)
}

// List returns the sessions f selects. A caller without the auditor role
// sees only their own; asking for another user's is KindForbidden.
func (s *Sessions) List(ctx context.Context, caller Caller, f audit.SessionFilter) ([]audit.Session, error) {
	if !s.mayAudit(caller.User) {
		if f.User != "" && f.User != caller.User {
			return nil, newError(KindForbidden, CodeNotAuditor, "listing other users' sessions needs the auditor role")
		}
		f.User = caller.User
	}
	ss, err := s.cfg.Store.Sessions(ctx, f)
	if err != nil {
		return nil, unavailable(err)
	}
	return ss, nil
}

// Get returns one session: the caller's own, or any for an auditor.
func (s *Sessions) Get(ctx context.Context, caller Caller, id string) (audit.Session, error) {
	x, err := s.lookup(ctx, id)
	if err != nil {
		return x, err
	}
	if x.User != caller.User && !s.mayAudit(caller.User) {
		return audit.Session{}, newError(KindForbidden, CodeNotAuditor, "reading other users' sessions needs the auditor role")
	}
	return x, nil
}

func (s *Sessions) lookup(ctx context.Context, id string) (audit.Session, error) {
	x, err := s.cfg.Store.Session(ctx, id)
	if errors.Is(err, audit.ErrNotFound) {
		return x, newError(KindNotFound, CodeNotFound, "no session %q", id)
	}
	if err != nil {
		return x, unavailable(err)
	}
	return x, nil
}

// OpenRecording records that caller reads the recording of session id for
// purpose (empty means PurposeReplay) and returns the session, whose
// RecordingPath the caller may then open. The caller must already hold the
// auditor role. If the access cannot be recorded it is refused
// (KindUnavailable): nobody reads a recording unrecorded.
func (s *Sessions) OpenRecording(ctx context.Context, caller Caller, id, purpose string) (audit.Session, error) {
	x, err := s.lookup(ctx, id)
	if err != nil {
		return x, err
	}
	if x.RecordingPath == "" {
		return audit.Session{}, newError(KindNotFound, CodeNoRecording, "session %s has no recording", x.ID)
	}
	if purpose == "" {
		purpose = PurposeReplay
	}
	purposes := []string{PurposeReplay, PurposeExport, PurposeWatch}
	if !slices.Contains(purposes, purpose) {
		return audit.Session{}, newError(KindInvalid, CodeBadPurpose, "purpose %q must be one of %v", audit.BoundText(purpose, maxAuditText), purposes)
	}
	err = appendEvent(ctx, s.cfg.Store, s.cfg.Clock().UTC(), audit.Event{Type: "recording.accessed", Code: purpose, Actor: caller.User,
		User: x.User, Host: x.Host, Login: x.Login, SessionID: x.ID, RequestID: x.RequestID, ClientAddr: caller.ClientAddr})
	if err != nil {
		return audit.Session{}, &Error{Kind: KindUnavailable, Code: CodeAuditUnavailable, Message: "audit store unavailable; access to recordings is audited", Err: err}
	}
	return x, nil
}

// Search runs a full-text search over recordings and records
// recording.searched with the query; no hit is returned unless that record
// is committed, as no recording is read unaudited. A query the index cannot
// run is KindInvalid.
func (s *Sessions) Search(ctx context.Context, caller Caller, q audit.SearchQuery) ([]audit.SearchHit, error) {
	hits, err := s.cfg.Store.Search(ctx, q)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Code: CodeSearchFailed, Message: err.Error()}
	}
	if err := appendEvent(ctx, s.cfg.Store, s.cfg.Clock().UTC(), audit.Event{Type: "recording.searched", Code: "ok", Actor: caller.User,
		ClientAddr: caller.ClientAddr, Message: audit.BoundText(q.Text, maxAuditText)}); err != nil {
		return nil, unavailable(err)
	}
	return hits, nil
}

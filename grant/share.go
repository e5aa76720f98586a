package grant

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jitssh/jitssh/audit"
)

// PurposeShare is the code of recording.accessed when a share link opened
// the recording.
const PurposeShare = "share"

// Share is a share link just made; Token is its secret, shown once.
type Share struct {
	audit.ShareLink
	Token string
}

// CreateShare makes a share link of session id's recording, valid for ttl
// (at least MinShareTTL, at most the policy's console.share_max), for
// anyone holding it. The caller needs the auditor role (they may read the
// recording themselves). It records share.created with who, which
// recording and the expiry.
func (c *Console) CreateShare(ctx context.Context, caller Caller, sessionID string, ttl time.Duration) (Share, error) {
	if err := c.Authorize(ctx, caller, RoleAuditor, "sharing a recording"); err != nil {
		return Share{}, err
	}
	max := c.cfg.Policy().Console.ShareMax
	if ttl < MinShareTTL || ttl > max {
		return Share{}, newError(KindInvalid, CodeShareTTL, "share link lifetime %s must be between %s and the policy's console.share_max %s", ttl, MinShareTTL, max)
	}
	x, err := c.lookupSession(ctx, sessionID)
	if err != nil {
		return Share{}, err
	}
	token, err := c.secret(sharePrefix)
	if err != nil {
		return Share{}, err
	}
	idSecret, err := c.secret("")
	if err != nil {
		return Share{}, err
	}
	now := c.now()
	l := audit.ShareLink{ID: "shr_" + idSecret[:16], Hash: hashToken(token), SessionID: x.ID, CreatedBy: caller.User, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err = c.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.InsertShareLink(l); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "share.created", Code: "ok", Actor: caller.User, User: x.User, Host: x.Host, Login: x.Login,
			SessionID: x.ID, RequestID: x.RequestID, ClientAddr: caller.ClientAddr,
			Data: map[string]string{"share_id": l.ID, "expires_at": l.ExpiresAt.Format(time.RFC3339)}})
		return err
	})
	if err != nil {
		return Share{}, unavailable(err)
	}
	return Share{ShareLink: l, Token: token}, nil
}

func (c *Console) lookupSession(ctx context.Context, id string) (audit.Session, error) {
	x, err := c.cfg.Store.Session(ctx, id)
	if errors.Is(err, audit.ErrNotFound) {
		return x, newError(KindNotFound, CodeNotFound, "no session %q", audit.BoundText(id, maxAuditText))
	}
	if err != nil {
		return x, unavailable(err)
	}
	if x.RecordingPath == "" {
		return audit.Session{}, newError(KindNotFound, CodeNoRecording, "session %s has no recording", x.ID)
	}
	return x, nil
}

// ShareLink returns the share link of token if it opens a recording now:
// known, not revoked, not expired, and its creator still has the auditor
// role (a link lends its creator's right to read the recording, so it
// dies with that right). Every other token is KindNotFound with
// CodeShareInvalid, the same answer for each, recorded nowhere (a
// scanner's noise).
func (c *Console) ShareLink(ctx context.Context, token string) (audit.ShareLink, error) {
	refuse := newError(KindNotFound, CodeShareInvalid, "this share link is not valid: it expired, was revoked or never existed")
	if !strings.HasPrefix(token, sharePrefix) {
		return audit.ShareLink{}, refuse
	}
	l, err := c.cfg.Store.ShareLinkByHash(ctx, hashToken(token))
	if errors.Is(err, audit.ErrNotFound) {
		return audit.ShareLink{}, refuse
	}
	if err != nil {
		return audit.ShareLink{}, unavailable(err)
	}
	if !l.RevokedAt.IsZero() || !c.now().Before(l.ExpiresAt) || !c.HasRole(l.CreatedBy, RoleAuditor) {
		return audit.ShareLink{}, refuse
	}
	return l, nil
}

// OpenShare records that the holder of a share link, from clientAddr,
// opens the one recording it shares (recording.accessed, code share, with
// the link's id) and returns that session. Nobody reads through a link
// unrecorded: a failed record refuses the access.
func (c *Console) OpenShare(ctx context.Context, token, clientAddr string) (audit.Session, audit.ShareLink, error) {
	l, err := c.ShareLink(ctx, token)
	if err != nil {
		return audit.Session{}, l, err
	}
	x, err := c.lookupSession(ctx, l.SessionID)
	if err != nil {
		return x, l, err
	}
	err = appendEvent(ctx, c.cfg.Store, c.now(), audit.Event{Type: "recording.accessed", Code: PurposeShare, Actor: "share:" + l.ID,
		User: x.User, Host: x.Host, Login: x.Login, SessionID: x.ID, RequestID: x.RequestID, ClientAddr: clientAddr,
		Data: map[string]string{"share_id": l.ID, "created_by": l.CreatedBy}})
	if err != nil {
		return audit.Session{}, l, &Error{Kind: KindUnavailable, Code: CodeAuditUnavailable, Message: "audit store unavailable; access to recordings is audited", Err: err}
	}
	return x, l, nil
}

// Shares lists the share links of session id (all when empty) for an
// auditor, newest first.
func (c *Console) Shares(ctx context.Context, caller Caller, sessionID string) ([]audit.ShareLink, error) {
	if err := c.Authorize(ctx, caller, RoleAuditor, "listing share links"); err != nil {
		return nil, err
	}
	ls, err := c.cfg.Store.ShareLinks(ctx, sessionID, 200)
	if err != nil {
		return nil, unavailable(err)
	}
	return ls, nil
}

// RevokeShare revokes share link id; only its creator or an admin may.
// It records share.revoked.
func (c *Console) RevokeShare(ctx context.Context, caller Caller, id string) error {
	l, err := c.cfg.Store.ShareLink(ctx, id)
	if errors.Is(err, audit.ErrNotFound) {
		return newError(KindNotFound, CodeNotFound, "no share link %q", audit.BoundText(id, maxAuditText))
	}
	if err != nil {
		return unavailable(err)
	}
	if l.CreatedBy != caller.User && !c.HasRole(caller.User, RoleAdmin) {
		return newError(KindForbidden, CodeNotShareOwner, "share link %s was made by %s; only they or an admin may revoke it", l.ID, l.CreatedBy)
	}
	now := c.now()
	err = c.cfg.Store.Do(ctx, func(tx *audit.Tx) error {
		if err := tx.RevokeShareLink(l.ID, caller.User, now); err != nil {
			return err
		}
		_, err := tx.Append(audit.Event{Time: now, Type: "share.revoked", Code: "ok", Actor: caller.User, SessionID: l.SessionID, ClientAddr: caller.ClientAddr,
			Data: map[string]string{"share_id": l.ID}})
		return err
	})
	if errors.Is(err, audit.ErrNotFound) {
		return newError(KindConflict, CodeShareInvalid, "share link %s is already revoked", l.ID)
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

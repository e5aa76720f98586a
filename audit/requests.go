package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Request states.
const (
	StatePending   = "pending"
	StateApproved  = "approved"
	StateDenied    = "denied"
	StateExpired   = "expired"
	StateCancelled = "cancelled"
	StateIssued    = "issued"
)

func validState(s string) bool {
	switch s {
	case StatePending, StateApproved, StateDenied, StateExpired, StateCancelled, StateIssued:
		return true
	}
	return false
}

// Request is one access request and where it stands.
type Request struct {
	ID              string
	User            string
	Host            string
	Login           string
	Role            string
	Justification   string
	State           string // one of the State* constants
	TTL             time.Duration
	PublicKey       string // authorized_keys form
	BreakGlass      bool
	ApprovalsNeeded int
	CreatedAt       time.Time
	ExpiresAt       time.Time // a pending request expires at this time
	DecidedAt       time.Time
	RedeemBy        time.Time // an approved request must be redeemed by this time
	DecidedBy       string
	DecisionReason  string
	Serial          uint64 // of the certificate issued for it
	ClientAddr      string
}

func (r Request) validate() error {
	if r.ID == "" {
		return errors.New("id is empty")
	}
	if r.User == "" {
		return errors.New("user is empty")
	}
	if !validState(r.State) {
		return fmt.Errorf("state %q is not a request state", r.State)
	}
	if r.TTL < 0 {
		return fmt.Errorf("ttl %s is negative", r.TTL)
	}
	return nil
}

// columns returns the stored values in requestColumns order (without id).
func (r Request) columns() ([]any, error) {
	var cd codec
	vals := []any{r.User, r.Host, r.Login, r.Role, r.Justification, r.State, int64(r.TTL), r.PublicKey,
		r.BreakGlass, r.ApprovalsNeeded, cd.nanos("created_at", r.CreatedAt), cd.nanos("expires_at", r.ExpiresAt),
		cd.nanos("decided_at", r.DecidedAt), cd.nanos("redeem_by", r.RedeemBy), r.DecidedBy, r.DecisionReason,
		toSerial(r.Serial), r.ClientAddr}
	return vals, cd.err
}

const requestColumns = `id, user, host, login, role, justification, state, ttl, public_key, break_glass,
	approvals_needed, created_at, expires_at, decided_at, redeem_by, decided_by, decision_reason, serial, client_addr`

func scanRequest(sc interface{ Scan(...any) error }) (Request, error) {
	var r Request
	var ttl, created, expires, decided, redeem, serial int64
	if err := sc.Scan(&r.ID, &r.User, &r.Host, &r.Login, &r.Role, &r.Justification, &r.State, &ttl, &r.PublicKey,
		&r.BreakGlass, &r.ApprovalsNeeded, &created, &expires, &decided, &redeem, &r.DecidedBy, &r.DecisionReason,
		&serial, &r.ClientAddr); err != nil {
		return Request{}, err
	}
	r.TTL = time.Duration(ttl)
	r.CreatedAt, r.ExpiresAt, r.DecidedAt, r.RedeemBy = fromNanos(created), fromNanos(expires), fromNanos(decided), fromNanos(redeem)
	r.Serial = fromSerial(serial)
	return r, nil
}

// InsertRequest records a new request; an existing ID is ErrConflict.
func (t *Tx) InsertRequest(r Request) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("insert request %q: %w", r.ID, err)
	}
	vals, err := r.columns()
	if err != nil {
		return fmt.Errorf("insert request %q: %w", r.ID, err)
	}
	if _, err := t.exec("INSERT INTO requests ("+requestColumns+") VALUES (?"+strings.Repeat(", ?", len(vals))+")",
		append([]any{r.ID}, vals...)...); err != nil {
		return fmt.Errorf("insert request %q: %w", r.ID, classify(err))
	}
	return nil
}

// Request returns the request with id as this transaction sees it, or
// ErrNotFound.
func (t *Tx) Request(id string) (Request, error) {
	if err := t.check(); err != nil {
		return Request{}, err
	}
	return requestRow(t.tx.QueryRow("SELECT "+requestColumns+" FROM requests WHERE id = ?", id), id)
}

func requestRow(row *sql.Row, id string) (Request, error) {
	r, err := scanRequest(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, fmt.Errorf("request %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Request{}, fmt.Errorf("request %q: %w", id, err)
	}
	return r, nil
}

// UpdateRequest replaces every field of the stored request r.ID with r, but
// only if its current state is one of fromStates; otherwise it returns
// ErrConflict (naming the current state) and changes nothing. An unknown ID
// is ErrNotFound. Because Do callbacks are serialized, "exactly one caller
// moves pending to approved" holds across concurrent callers.
func (t *Tx) UpdateRequest(r Request, fromStates ...string) error {
	if err := t.check(); err != nil {
		return err
	}
	if len(fromStates) == 0 {
		return fmt.Errorf("update request %q: no from states given", r.ID)
	}
	for _, s := range fromStates {
		if !validState(s) {
			return fmt.Errorf("update request %q: from state %q is not a request state", r.ID, s)
		}
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("update request %q: %w", r.ID, err)
	}
	vals, err := r.columns()
	if err != nil {
		return fmt.Errorf("update request %q: %w", r.ID, err)
	}
	set := strings.ReplaceAll(strings.TrimPrefix(requestColumns, "id, "), ",", " = ?,") + " = ?"
	args := append(vals, r.ID)
	for _, s := range fromStates {
		args = append(args, s)
	}
	res, err := t.exec("UPDATE requests SET "+set+" WHERE id = ? AND state IN (?"+
		strings.Repeat(", ?", len(fromStates)-1)+")", args...)
	if err != nil {
		return fmt.Errorf("update request %q: %w", r.ID, classify(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	cur, err := t.Request(r.ID)
	if err != nil {
		return fmt.Errorf("update request: %w", err)
	}
	return fmt.Errorf("update request %q: state is %q, not %s: %w", r.ID, cur.State, strings.Join(fromStates, " or "), ErrConflict)
}

// Request returns the request with id, or ErrNotFound.
func (s *Store) Request(ctx context.Context, id string) (Request, error) {
	db, err := s.reader()
	if err != nil {
		return Request{}, err
	}
	return requestRow(db.QueryRowContext(ctx, "SELECT "+requestColumns+" FROM requests WHERE id = ?", id), id)
}

// RequestFilter selects requests. Zero fields do not filter.
type RequestFilter struct {
	User, State, Host string
	BreakGlass        bool      // true: only break-glass requests
	Since             time.Time // CreatedAt >= Since
	Limit             int       // <= 0: no limit
}

// Requests returns the requests matching f, newest CreatedAt first.
func (s *Store) Requests(ctx context.Context, f RequestFilter) ([]Request, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	var w where
	w.eq("user", f.User)
	w.eq("state", f.State)
	w.eq("host", f.Host)
	if f.BreakGlass {
		w.add("break_glass = 1")
	}
	if !f.Since.IsZero() {
		var cd codec
		w.add("created_at >= ?", cd.nanos("since", f.Since))
		if cd.err != nil {
			return nil, fmt.Errorf("list requests: %w", cd.err)
		}
	}
	rows, err := db.QueryContext(ctx, "SELECT "+requestColumns+" FROM requests"+w.sql()+
		" ORDER BY created_at DESC, id"+clampLimit(f.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// Approval is one approver's decision on a request.
type Approval struct {
	RequestID string
	Approver  string
	Decision  string // "approve" or "deny"
	Reason    string
	Time      time.Time
}

// AddApproval records a. The request must exist (ErrNotFound otherwise) and
// each approver decides at most once per request (ErrConflict otherwise).
func (t *Tx) AddApproval(a Approval) error {
	if err := t.check(); err != nil {
		return err
	}
	if a.Approver == "" {
		return fmt.Errorf("add approval to request %q: approver is empty", a.RequestID)
	}
	if a.Decision != "approve" && a.Decision != "deny" {
		return fmt.Errorf("add approval to request %q: decision %q is not approve or deny", a.RequestID, a.Decision)
	}
	var exists int
	switch err := t.tx.QueryRow("SELECT 1 FROM requests WHERE id = ?", a.RequestID).Scan(&exists); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("add approval to request %q: %w", a.RequestID, ErrNotFound)
	case err != nil:
		return fmt.Errorf("add approval to request %q: %w", a.RequestID, err)
	}
	var cd codec
	ns := cd.nanos("time", a.Time)
	if cd.err != nil {
		return fmt.Errorf("add approval to request %q: %w", a.RequestID, cd.err)
	}
	if _, err := t.exec("INSERT INTO approvals (request_id, approver, decision, reason, time) VALUES (?, ?, ?, ?, ?)",
		a.RequestID, a.Approver, a.Decision, a.Reason, ns); err != nil {
		return fmt.Errorf("add approval by %q to request %q: %w", a.Approver, a.RequestID, classify(err))
	}
	return nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func approvals(ctx context.Context, q querier, requestID string) ([]Approval, error) {
	rows, err := q.QueryContext(ctx, "SELECT request_id, approver, decision, reason, time FROM approvals WHERE request_id = ? ORDER BY time, rowid", requestID)
	if err != nil {
		return nil, fmt.Errorf("list approvals of request %q: %w", requestID, err)
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		var a Approval
		var ns int64
		if err := rows.Scan(&a.RequestID, &a.Approver, &a.Decision, &a.Reason, &ns); err != nil {
			return nil, fmt.Errorf("list approvals of request %q: %w", requestID, err)
		}
		a.Time = fromNanos(ns)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list approvals of request %q: %w", requestID, err)
	}
	return out, nil
}

// Approvals returns the decisions on requestID as this transaction sees
// them, oldest first.
func (t *Tx) Approvals(requestID string) ([]Approval, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return approvals(context.Background(), t.tx, requestID)
}

// Approvals returns the decisions on requestID, oldest first (none for an
// unknown request).
func (s *Store) Approvals(ctx context.Context, requestID string) ([]Approval, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	return approvals(ctx, db, requestID)
}

package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// GenesisHash is the prev_hash of the first event: 32 zero bytes in hex.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// canonicalTimeLayout is RFC 3339 with exactly nine fractional digits, always
// in UTC ("Z").
const canonicalTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Event is one entry of the append-only, hash-chained audit log.
type Event struct {
	Seq        int64     // position in the chain, from 1, assigned by Append
	Time       time.Time // set by the caller; Append uses time.Now().UTC() if zero
	Type       string    // stable event type, e.g. "request.created"
	Code       string    // policy reason code or error code
	Actor      string    // who caused the event (may differ from User, e.g. an approver)
	User       string
	Host       string
	Login      string
	RequestID  string
	SessionID  string
	Serial     uint64
	ClientAddr string
	Message    string
	Data       map[string]string // extra fields; nil and empty are the same
	PrevHash   string            // hex hash of the previous event, GenesisHash for the first
	Hash       string            // hex SHA-256(prev hash bytes || Canonical(event))
}

// canonicalEvent fixes the field order of the canonical form.
type canonicalEvent struct {
	Seq        int64             `json:"seq"`
	Time       string            `json:"time"`
	Type       string            `json:"type"`
	Code       string            `json:"code"`
	Actor      string            `json:"actor"`
	User       string            `json:"user"`
	Host       string            `json:"host"`
	Login      string            `json:"login"`
	RequestID  string            `json:"request_id"`
	SessionID  string            `json:"session_id"`
	Serial     uint64            `json:"serial"`
	ClientAddr string            `json:"client_addr"`
	Message    string            `json:"message"`
	Data       map[string]string `json:"data"`
}

// Canonical returns the bytes that are hashed for e: a compact JSON object
// with exactly these keys in this order:
//
//	{"seq":N,"time":"T","type":S,"code":S,"actor":S,"user":S,"host":S,
//	 "login":S,"request_id":S,"session_id":S,"serial":N,"client_addr":S,
//	 "message":S,"data":{...}}
//
// without whitespace, where seq and serial are decimal integers (serial is the
// unsigned 64-bit value), time is e.Time in UTC formatted as
// "2006-01-02T15:04:05.000000000Z" (always nine fractional digits), strings are
// encoded as Go's encoding/json does (so <, > and & appear as \u003c, \u003e
// and \u0026), and data is an object with keys in byte order ({} when empty).
// PrevHash and Hash are not part of it. The event hash is
// hex(SHA-256(prevHashBytes || Canonical(e))), where prevHashBytes are the 32
// bytes that PrevHash encodes.
func Canonical(e Event) []byte {
	data := e.Data
	if data == nil {
		data = map[string]string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Encoding a struct of strings, integers and a string map cannot fail.
	_ = enc.Encode(canonicalEvent{
		Seq: e.Seq, Time: e.Time.UTC().Format(canonicalTimeLayout), Type: e.Type, Code: e.Code,
		Actor: e.Actor, User: e.User, Host: e.Host, Login: e.Login, RequestID: e.RequestID,
		SessionID: e.SessionID, Serial: e.Serial, ClientAddr: e.ClientAddr, Message: e.Message,
		Data: data,
	})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// ChainHash returns hex(SHA-256(prev || Canonical(e))) for the hex-encoded
// previous hash prev.
func ChainHash(prev string, e Event) (string, error) {
	pb, err := hex.DecodeString(prev)
	if err != nil || len(pb) != sha256.Size {
		return "", fmt.Errorf("prev hash %q is not 32 hex-encoded bytes", prev)
	}
	h := sha256.New()
	h.Write(pb)
	h.Write(Canonical(e))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// head is the last event of the chain as the writer knows it.
type head struct {
	seq  int64
	hash string
}

func loadHead(ctx context.Context, db *sql.DB) (head, error) {
	h := head{hash: GenesisHash}
	err := db.QueryRowContext(ctx, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").Scan(&h.seq, &h.hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return head{}, fmt.Errorf("load event chain head: %w", err)
	}
	return h, nil
}

func loadHeadTx(tx *sql.Tx) (head, error) {
	h := head{hash: GenesisHash}
	err := tx.QueryRow("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").Scan(&h.seq, &h.hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return head{}, fmt.Errorf("audit: load event chain head: %w", err)
	}
	return h, nil
}

// clean makes text valid UTF-8 so that what is stored is exactly what the
// canonical form encodes. NUL stays (JSON output is faithful to what came
// from outside); on PostgreSQL, whose TEXT refuses it, the driver escapes
// it (pgtext.go).
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// BoundText is how untrusted text (a refused request's host, a login's user
// name, a revocation reason) goes into an audit row: valid UTF-8, and at most
// max bytes followed by "..." when it was longer, cut between characters so
// that the row never shows a U+FFFD of its own making. It bounds what a
// client can make the store keep, not what people may write: max is a few
// hundred bytes.
func BoundText(s string, max int) string {
	s = clean(s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// MaxIndexedText bounds, in bytes, each of an event's short fields (type,
// code, actor, user, host, login, request and session id, client address)
// as Append stores them: they are indexed, and PostgreSQL refuses a btree
// entry over about 2.7 KB (an escaped field can be twice its length,
// pgtext.go), which would fail the batch's shared INSERT (txConn) and with
// it every other caller of the batch. A client picks some of them (the SSH
// user name of a refused login).
const MaxIndexedText = 1024

// Append adds e to the end of the chain and returns it as stored: Seq,
// PrevHash and Hash are assigned (whatever the caller put there is ignored),
// Time is e.Time in UTC (time.Now().UTC() when zero), invalid UTF-8 in any
// string is replaced by U+FFFD and a short field longer than MaxIndexedText
// is cut there (BoundText); the hash is of the event as stored. Type must not be empty. On PostgreSQL an
// error from Append leaves the transaction unusable: the callback must
// return an error then (on SQLite it may go on).
func (t *Tx) Append(e Event) (Event, error) {
	if err := t.check(); err != nil {
		return Event{}, err
	}
	if e.Type == "" {
		return Event{}, errors.New("append event: type is empty")
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	var c codec
	ns := c.nanos("time", e.Time)
	if c.err != nil {
		return Event{}, fmt.Errorf("append event %q: %w", e.Type, c.err)
	}
	e.Time = time.Unix(0, ns).UTC()
	for _, f := range []*string{&e.Type, &e.Code, &e.Actor, &e.User, &e.Host, &e.Login,
		&e.RequestID, &e.SessionID, &e.ClientAddr} {
		*f = BoundText(*f, MaxIndexedText)
	}
	e.Message = clean(e.Message)
	var data map[string]string
	if len(e.Data) > 0 {
		data = make(map[string]string, len(e.Data))
		for k, v := range e.Data {
			data[clean(k)] = clean(v)
		}
	}
	e.Data = data
	dataJSON, err := encodeData(data)
	if err != nil {
		return Event{}, fmt.Errorf("append event %q: %w", e.Type, err)
	}
	e.Seq = t.head.seq + 1
	e.PrevHash = t.head.hash
	if e.Hash, err = ChainHash(e.PrevHash, e); err != nil {
		return Event{}, fmt.Errorf("append event %q: %w", e.Type, err)
	}
	// No statement savepoint (Tx.exec) on PostgreSQL: this insert fails
	// only on a fork or a broken connection, which no caller goes on
	// writing after, and it is the hottest statement of the store. There
	// it is held back and inserted with the batch's others (txConn).
	err = t.tx.appendRow([]any{e.Seq, ns, e.Type, e.Code, e.Actor, e.User, e.Host, e.Login, e.RequestID,
		e.SessionID, toSerial(e.Serial), e.ClientAddr, e.Message, dataJSON, e.PrevHash, e.Hash})
	if err != nil {
		return Event{}, fmt.Errorf("append event %q seq %d: %w", e.Type, e.Seq, classify(err))
	}
	t.head = head{seq: e.Seq, hash: e.Hash}
	return e, nil
}

// Head returns the sequence number and hash of the last event as seen inside
// this transaction (0 and GenesisHash for an empty log). Callers use it to
// sign a Checkpoint.
func (t *Tx) Head() (seq int64, hash string) {
	return t.head.seq, t.head.hash
}

func encodeData(data map[string]string) (string, error) {
	if len(data) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("encode data: %w", err)
	}
	return string(b), nil
}

func decodeData(s string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("decode data %q: %w", s, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// EventFilter selects events. Zero fields do not filter.
type EventFilter struct {
	User, Host string
	// Type matches exactly, or as a prefix when it ends with "." ("request."
	// matches "request.created" but not "request").
	Type                 string
	RequestID, SessionID string
	Since                time.Time // inclusive
	Until                time.Time // exclusive
	AfterSeq             int64     // only events with Seq > AfterSeq
	Limit                int       // <= 0: no limit
	// Newest returns the last Limit events, newest first (the console's
	// view), instead of the first in ascending order.
	Newest bool
}

const eventColumns = `seq, time, type, code, actor, user, host, login, request_id, session_id,
	serial, client_addr, message, data, prev_hash, hash`

func scanEvent(sc interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var ns, serial int64
	var data string
	if err := sc.Scan(&e.Seq, &ns, &e.Type, &e.Code, &e.Actor, &e.User, &e.Host, &e.Login,
		&e.RequestID, &e.SessionID, &serial, &e.ClientAddr, &e.Message, &data, &e.PrevHash, &e.Hash); err != nil {
		return Event{}, err
	}
	e.Time = time.Unix(0, ns).UTC()
	e.Serial = fromSerial(serial)
	var err error
	if e.Data, err = decodeData(data); err != nil {
		// Seq is kept so that Verify can report where the bad row is.
		return Event{Seq: e.Seq}, fmt.Errorf("event %d: %w", e.Seq, err)
	}
	return e, nil
}

// Events returns the events matching f in ascending Seq order, or
// descending with f.Newest.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	var c codec
	var w where
	w.eq("user", f.User)
	w.eq("host", f.Host)
	if strings.HasSuffix(f.Type, ".") {
		// A range instead of LIKE keeps the index usable and needs no escaping:
		// '/' is the byte after '.'.
		w.add("type >= ? AND type < ?", f.Type, f.Type[:len(f.Type)-1]+"/")
	} else {
		w.eq("type", f.Type)
	}
	w.eq("request_id", f.RequestID)
	w.eq("session_id", f.SessionID)
	if !f.Since.IsZero() {
		w.add("time >= ?", c.nanos("since", f.Since))
	}
	if !f.Until.IsZero() {
		w.add("time < ?", c.nanos("until", f.Until))
	}
	if f.AfterSeq > 0 {
		w.add("seq > ?", f.AfterSeq)
	}
	if c.err != nil {
		return nil, fmt.Errorf("list events: %w", c.err)
	}
	order := " ORDER BY seq"
	if f.Newest {
		order += " DESC"
	}
	rows, err := db.QueryContext(ctx, "SELECT "+eventColumns+" FROM events"+w.sql()+order+clampLimit(f.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// where builds a WHERE clause from optional conditions.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// eq adds "col = v" unless v is empty.
func (w *where) eq(col, v string) {
	if v != "" {
		w.add(col+" = ?", v)
	}
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// EventCounts returns how many events of each type the log holds, for
// monitoring. It reads the type index only, not the events.
func (s *Store) EventCounts(ctx context.Context) (map[string]int64, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	q := "SELECT type, COUNT(*) FROM events INDEXED BY events_type GROUP BY type"
	if s.engine == enginePostgres {
		q = "SELECT type, COUNT(*) FROM events GROUP BY type" // PostgreSQL picks its index itself
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("count events: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var typ string
		var n int64
		if err := rows.Scan(&typ, &n); err != nil {
			return nil, fmt.Errorf("count events: %w", err)
		}
		out[typ] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count events: %w", err)
	}
	return out, nil
}

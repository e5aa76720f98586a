package audit

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the numbered schema steps; PRAGMA user_version records how
// many have been applied. Steps are only ever appended, never edited.
func migrations() []string {
	return []string{
		sqliteStep1, sqliteStep2, sqliteStep3, sqliteStep4, sqliteStep5, sqliteStep6,
		sqliteStep7, sqliteStep8, consoleSchema, sqliteStep10, sqliteStep11, flowsSchema,
		replicaSchema, upgradeSchema,
	}
}

// sqliteStep1 is migration 1: the whole initial schema.
const sqliteStep1 = `
CREATE TABLE events (
	seq         INTEGER PRIMARY KEY,
	time        INTEGER NOT NULL,
	type        TEXT NOT NULL,
	code        TEXT NOT NULL DEFAULT '',
	actor       TEXT NOT NULL DEFAULT '',
	user        TEXT NOT NULL DEFAULT '',
	host        TEXT NOT NULL DEFAULT '',
	login       TEXT NOT NULL DEFAULT '',
	request_id  TEXT NOT NULL DEFAULT '',
	session_id  TEXT NOT NULL DEFAULT '',
	serial      INTEGER NOT NULL DEFAULT 0,
	client_addr TEXT NOT NULL DEFAULT '',
	message     TEXT NOT NULL DEFAULT '',
	data        TEXT NOT NULL DEFAULT '{}',
	prev_hash   TEXT NOT NULL,
	hash        TEXT NOT NULL
);
CREATE INDEX events_user ON events(user, seq);
CREATE INDEX events_host ON events(host, seq);
CREATE INDEX events_type ON events(type, seq);
CREATE INDEX events_request ON events(request_id, seq);
CREATE INDEX events_session ON events(session_id, seq);
CREATE INDEX events_time ON events(time);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
	BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
	BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE checkpoints (
	seq       INTEGER PRIMARY KEY,
	head_hash TEXT NOT NULL,
	time      INTEGER NOT NULL,
	signature BLOB,
	key       TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
	BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
	BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;

CREATE TABLE certificates (
	serial          INTEGER PRIMARY KEY,
	kind            TEXT NOT NULL CHECK (kind IN ('user', 'target', 'host')),
	request_id      TEXT NOT NULL DEFAULT '',
	session_id      TEXT NOT NULL DEFAULT '',
	user            TEXT NOT NULL DEFAULT '',
	host            TEXT NOT NULL DEFAULT '',
	login           TEXT NOT NULL DEFAULT '',
	principals      TEXT NOT NULL DEFAULT '[]',
	key_fingerprint TEXT NOT NULL DEFAULT '',
	key_id          TEXT NOT NULL DEFAULT '',
	valid_after     INTEGER NOT NULL DEFAULT 0,
	valid_before    INTEGER NOT NULL DEFAULT 0,
	client_addr     TEXT NOT NULL DEFAULT '',
	issued_at       INTEGER NOT NULL DEFAULT 0,
	revoked_at      INTEGER NOT NULL DEFAULT 0,
	revoke_reason   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX certificates_user ON certificates(user, issued_at);
CREATE INDEX certificates_request ON certificates(request_id);
CREATE INDEX certificates_valid ON certificates(valid_before);
CREATE INDEX certificates_revoked ON certificates(revoked_at) WHERE revoked_at != 0;

CREATE TABLE requests (
	id               TEXT PRIMARY KEY,
	user             TEXT NOT NULL,
	host             TEXT NOT NULL DEFAULT '',
	login            TEXT NOT NULL DEFAULT '',
	role             TEXT NOT NULL DEFAULT '',
	justification    TEXT NOT NULL DEFAULT '',
	state            TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'cancelled', 'issued')),
	ttl              INTEGER NOT NULL DEFAULT 0,
	public_key       TEXT NOT NULL DEFAULT '',
	break_glass      INTEGER NOT NULL DEFAULT 0,
	approvals_needed INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL DEFAULT 0,
	expires_at       INTEGER NOT NULL DEFAULT 0,
	decided_at       INTEGER NOT NULL DEFAULT 0,
	redeem_by        INTEGER NOT NULL DEFAULT 0,
	decided_by       TEXT NOT NULL DEFAULT '',
	decision_reason  TEXT NOT NULL DEFAULT '',
	serial           INTEGER NOT NULL DEFAULT 0,
	client_addr      TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX requests_created ON requests(created_at);
CREATE INDEX requests_user ON requests(user, created_at);
CREATE INDEX requests_state ON requests(state, created_at);

CREATE TABLE approvals (
	request_id TEXT NOT NULL REFERENCES requests(id),
	approver   TEXT NOT NULL,
	decision   TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
	reason     TEXT NOT NULL DEFAULT '',
	time       INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (request_id, approver)
);

CREATE TABLE tokens (
	hash       TEXT PRIMARY KEY,
	user       TEXT NOT NULL,
	issued_at  INTEGER NOT NULL DEFAULT 0,
	expires_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX tokens_user ON tokens(user);

CREATE TABLE users (
	name        TEXT PRIMARY KEY,
	groups_json TEXT NOT NULL DEFAULT '[]',
	keys_json   TEXT NOT NULL DEFAULT '[]',
	created_at  INTEGER NOT NULL DEFAULT 0,
	created_by  TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE TABLE sessions (
	id               TEXT PRIMARY KEY,
	request_id       TEXT NOT NULL DEFAULT '',
	user             TEXT NOT NULL DEFAULT '',
	host             TEXT NOT NULL DEFAULT '',
	login            TEXT NOT NULL DEFAULT '',
	serial           INTEGER NOT NULL DEFAULT 0,
	target_serial    INTEGER NOT NULL DEFAULT 0,
	client_addr      TEXT NOT NULL DEFAULT '',
	command          TEXT NOT NULL DEFAULT '',
	started_at       INTEGER NOT NULL DEFAULT 0,
	ended_at         INTEGER NOT NULL DEFAULT 0,
	exit_status      INTEGER NOT NULL DEFAULT 0,
	bytes_in         INTEGER NOT NULL DEFAULT 0,
	bytes_out        INTEGER NOT NULL DEFAULT 0,
	recording_path   TEXT NOT NULL DEFAULT '',
	recording_sha256 TEXT NOT NULL DEFAULT '',
	recording_size   INTEGER NOT NULL DEFAULT 0,
	end_reason       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_started ON sessions(started_at);
CREATE INDEX sessions_user ON sessions(user, started_at);
CREATE INDEX sessions_host ON sessions(host, started_at);
CREATE INDEX sessions_live ON sessions(started_at) WHERE ended_at = 0;

-- Session text is always kept here; builds with FTS5 also index it in
-- session_text_fts (see search.go), so either build can open the file.
CREATE TABLE session_text (
	id         INTEGER PRIMARY KEY,
	session_id TEXT NOT NULL,
	offset_ns  INTEGER NOT NULL,
	kind       TEXT NOT NULL CHECK (kind IN ('o', 'i', 'm')),
	text       TEXT NOT NULL
);
CREATE INDEX session_text_session ON session_text(session_id, offset_ns);

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
`

// sqliteStep2 is migration 2: session text as documents (search.go): the
// lines of one IndexText call of one session and kind in one row, with each
// line's offset and length in lines, instead of a row per line. Old rows
// become one-line documents (lines NULL) under their old id, so they stay
// searchable in the same order. The old FTS5 table, if a build with FTS5
// made one, is dropped by catchUpFTS: a build without FTS5 cannot drop it.
const sqliteStep2 = `
CREATE TABLE session_text_doc (
	id         INTEGER PRIMARY KEY,
	session_id TEXT NOT NULL,
	kind       TEXT NOT NULL CHECK (kind IN ('o', 'i', 'm')),
	offset_ns  INTEGER NOT NULL,
	text       TEXT NOT NULL,
	lines      BLOB
);
CREATE INDEX session_text_doc_session ON session_text_doc(session_id, offset_ns);
INSERT INTO session_text_doc (id, session_id, kind, offset_ns, text, lines)
	SELECT id, session_id, kind, offset_ns, text, NULL FROM session_text ORDER BY id;
DROP TABLE session_text;
DELETE FROM meta WHERE key = 'fts_upto';
`

// sqliteStep3 is migration 3: a certificate's extensions and critical
// options, as JSON objects, so that what a target certificate may permit is
// read from what the engineer's certificate was issued with. Every user and
// target certificate issued before had permit-pty (policy always grants it,
// the target path always added it), and nothing else is known of them.
const sqliteStep3 = `
ALTER TABLE certificates ADD COLUMN extensions TEXT NOT NULL DEFAULT '{}';
ALTER TABLE certificates ADD COLUMN critical_options TEXT NOT NULL DEFAULT '{}';
UPDATE certificates SET extensions = '{"permit-pty":""}' WHERE kind IN ('user', 'target');
`

// sqliteStep4 is migration 4: Idempotency-Key of POST /v1/requests
// (idempotency.go): the first request a user made with a key, the hash of
// its body and, once signed, its certificate, so that a retry is answered
// with the first outcome and never a second certificate. And an index of
// sessions by certificate serial.
const sqliteStep4 = `
CREATE TABLE idempotency_keys (
	user        TEXT NOT NULL,
	key         TEXT NOT NULL,
	body_hash   TEXT NOT NULL,
	request_id  TEXT NOT NULL,
	state       TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
	certificate TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (user, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
-- The sessions of one certificate, for its status (serialsessions.go).
CREATE INDEX sessions_serial ON sessions(serial, started_at);
`

// sqliteStep5 is migration 5: hosts as data (hosts.go): the enrolled
// targets, with their host key, labels and current host certificate, kept
// after removal (removed_at) so that known_hosts can say @revoked; and the
// one-time join tokens, stored as their SHA-256.
const sqliteStep5 = `
CREATE TABLE hosts (
	name            TEXT PRIMARY KEY,
	address         TEXT NOT NULL,
	host_key        TEXT NOT NULL DEFAULT '',
	labels          TEXT NOT NULL DEFAULT '{}',
	enrolled_at     INTEGER NOT NULL,
	enrolled_by     TEXT NOT NULL DEFAULT '',
	cert_serial     INTEGER NOT NULL DEFAULT 0,
	cert_expires_at INTEGER NOT NULL DEFAULT 0,
	last_seen       INTEGER NOT NULL DEFAULT 0,
	removed_at      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE join_tokens (
	token_hash TEXT PRIMARY KEY,
	host       TEXT NOT NULL,
	address    TEXT NOT NULL,
	labels     TEXT NOT NULL DEFAULT '{}',
	created_by TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX certificates_host ON certificates(host, kind, valid_before);
`

// sqliteStep6 is migration 6 (issue 13): ephemeral accounts (accounts.go).
// One row per ephemeral grant, from request time (planned) to removal, never
// deleted: (host, login) and (host, uid) are unique, so a login or a UID is
// never handed out twice on a host. The row is also the removal queue
// (state, attempts, next_attempt), so pending removals survive a restart.
// ephemeral_hosts mirrors each host's UID high-water mark.
const sqliteStep6 = `
CREATE TABLE ephemeral_accounts (
	request_id   TEXT PRIMARY KEY,
	host         TEXT NOT NULL,
	login        TEXT NOT NULL,
	user         TEXT NOT NULL,
	uid          INTEGER NOT NULL DEFAULT 0,
	groups       TEXT NOT NULL DEFAULT '[]',
	sudo         TEXT NOT NULL DEFAULT '[]',
	shell        TEXT NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('planned', 'created', 'removing', 'removed', 'failed')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	create_sent  INTEGER NOT NULL DEFAULT 0,
	planned_at   INTEGER NOT NULL,
	created_at   INTEGER NOT NULL DEFAULT 0,
	removed_at   INTEGER NOT NULL DEFAULT 0,
	UNIQUE (host, login)
);
CREATE UNIQUE INDEX ephemeral_accounts_uid ON ephemeral_accounts(host, uid) WHERE uid > 0;
CREATE INDEX ephemeral_accounts_state ON ephemeral_accounts(state, next_attempt);
CREATE TABLE ephemeral_hosts (
	host       TEXT PRIMARY KEY,
	high_water INTEGER NOT NULL
) WITHOUT ROWID;
`

// sqliteStep7 is migration 7 (issue 11, SSO): the identities people logged
// in with at an OpenID provider (merged into the policy in force like
// enrolled users, until expires_at) and, per bearer token of an SSO login,
// the provider session it came from, with the provider's refresh token
// sealed under a key derived from the bearer token, which is never stored
// (sso.go).
const sqliteStep7 = `
CREATE TABLE sso_identities (
	name        TEXT PRIMARY KEY,
	provider    TEXT NOT NULL,
	subject     TEXT NOT NULL,
	groups_json TEXT NOT NULL DEFAULT '[]',
	expires_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE sso_logins (
	token_hash     TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	provider       TEXT NOT NULL,
	subject        TEXT NOT NULL,
	refresh_sealed BLOB NOT NULL,
	expires_at     INTEGER NOT NULL
) WITHOUT ROWID;
`

// sqliteStep8 is migration 8 (issue 15): search indexing that fell behind a
// session (indexpending.go): the number of the session's text lines, in
// recording order, that the index holds; the rest is read back from the
// recording, after the session or at the next start.
const sqliteStep8 = `
CREATE TABLE index_pending (
	session_id TEXT PRIMARY KEY,
	next_line  INTEGER NOT NULL CHECK (next_line >= 0),
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`

// sqliteStep10 is migration 10 (issue 11, SSO review): one provider subject
// holds one name, so a rename at the provider cannot give one person two
// names (and with them approval of their own requests). Of duplicates the
// newest identity is kept; the tokens of the others stop working (their name
// leaves the policy in force).
const sqliteStep10 = `
DELETE FROM sso_identities WHERE EXISTS (SELECT 1 FROM sso_identities AS b
	WHERE b.provider = sso_identities.provider AND b.subject = sso_identities.subject
	AND (b.updated_at > sso_identities.updated_at OR (b.updated_at = sso_identities.updated_at AND b.name > sso_identities.name)));
CREATE UNIQUE INDEX sso_identities_subject ON sso_identities(provider, subject);
`

// sqliteStep11 is migration 11 (issue 12, the change feed): PostgreSQL's
// step adds the trigger that notifies replicas of each commit; SQLite has no
// other replicas (other processes on the file are polled, this one's commits
// wake its feed in the writer), so nothing here.
const sqliteStep11 = `SELECT 1`

// migrate applies the pending steps and the new user_version in one
// transaction, so a failed step leaves the database as it was.
func migrate(ctx context.Context, db *sql.DB) error {
	steps := migrations()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("migrate schema: read user_version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("migrate schema: database schema version %d is newer than this binary's %d", version, len(steps))
	}
	if version == len(steps) {
		return nil
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migrate schema: step %d: %w", i+1, err)
		}
	}
	// PRAGMA takes no parameters; len(steps) is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(steps))); err != nil {
		return fmt.Errorf("migrate schema: set user_version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: commit: %w", err)
	}
	return nil
}

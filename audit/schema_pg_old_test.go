// The previous release's PostgreSQL migrations 1-10, as 584674b:audit/schema_pg.go shipped
// them (before the in-place COLLATE "C" edit), for the upgrade tests.

package audit

// oldPGMigrations are pgMigrations()[:10] as the previous release had them.
func oldPGMigrations() []string {
	return []string{oldPGStep1, oldPGStep2, oldPGStep3, oldPGStep4, oldPGStep5, oldPGStep6, oldPGStep7, oldPGStep8, oldPGStep9, oldPGStep10}
}

// oldPGStep1 is migration 1 on PostgreSQL.
const oldPGStep1 = `
CREATE FUNCTION jitssh_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% are append-only', TG_TABLE_NAME;
END;
$$;
CREATE TABLE events (
	seq         BIGINT PRIMARY KEY,
	time        BIGINT NOT NULL,
	type        TEXT NOT NULL,
	code        TEXT NOT NULL DEFAULT '',
	actor       TEXT NOT NULL DEFAULT '',
	"user"        TEXT NOT NULL DEFAULT '',
	host        TEXT NOT NULL DEFAULT '',
	login       TEXT NOT NULL DEFAULT '',
	request_id  TEXT NOT NULL DEFAULT '',
	session_id  TEXT NOT NULL DEFAULT '',
	serial      BIGINT NOT NULL DEFAULT 0,
	client_addr TEXT NOT NULL DEFAULT '',
	message     TEXT NOT NULL DEFAULT '',
	data        TEXT NOT NULL DEFAULT '{}',
	prev_hash   TEXT NOT NULL,
	hash        TEXT NOT NULL
);
CREATE INDEX events_user ON events("user", seq);
CREATE INDEX events_host ON events(host, seq);
CREATE INDEX events_type ON events(type, seq);
CREATE INDEX events_request ON events(request_id, seq);
CREATE INDEX events_session ON events(session_id, seq);
CREATE INDEX events_time ON events(time);
-- PostgreSQL only: several writers share the chain, and even a locking
-- bug must not fork it (store_pg.go).
CREATE UNIQUE INDEX events_prev_hash ON events(prev_hash);
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
	FOR EACH ROW EXECUTE FUNCTION jitssh_append_only();

CREATE TABLE checkpoints (
	seq       BIGINT PRIMARY KEY,
	head_hash TEXT NOT NULL,
	time      BIGINT NOT NULL,
	signature BYTEA,
	key       TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
	FOR EACH ROW EXECUTE FUNCTION jitssh_append_only();

CREATE TABLE certificates (
	serial          BIGINT PRIMARY KEY,
	kind            TEXT NOT NULL CHECK (kind IN ('user', 'target', 'host')),
	request_id      TEXT NOT NULL DEFAULT '',
	session_id      TEXT NOT NULL DEFAULT '',
	"user"            TEXT NOT NULL DEFAULT '',
	host            TEXT NOT NULL DEFAULT '',
	login           TEXT NOT NULL DEFAULT '',
	principals      TEXT NOT NULL DEFAULT '[]',
	key_fingerprint TEXT NOT NULL DEFAULT '',
	key_id          TEXT NOT NULL DEFAULT '',
	valid_after     BIGINT NOT NULL DEFAULT 0,
	valid_before    BIGINT NOT NULL DEFAULT 0,
	client_addr     TEXT NOT NULL DEFAULT '',
	issued_at       BIGINT NOT NULL DEFAULT 0,
	revoked_at      BIGINT NOT NULL DEFAULT 0,
	revoke_reason   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX certificates_user ON certificates("user", issued_at);
CREATE INDEX certificates_request ON certificates(request_id);
CREATE INDEX certificates_valid ON certificates(valid_before);
CREATE INDEX certificates_revoked ON certificates(revoked_at) WHERE revoked_at != 0;

CREATE TABLE requests (
	id               TEXT PRIMARY KEY,
	"user"             TEXT NOT NULL,
	host             TEXT NOT NULL DEFAULT '',
	login            TEXT NOT NULL DEFAULT '',
	role             TEXT NOT NULL DEFAULT '',
	justification    TEXT NOT NULL DEFAULT '',
	state            TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'cancelled', 'issued')),
	ttl              BIGINT NOT NULL DEFAULT 0,
	public_key       TEXT NOT NULL DEFAULT '',
	break_glass      BIGINT NOT NULL DEFAULT 0,
	approvals_needed BIGINT NOT NULL DEFAULT 0,
	created_at       BIGINT NOT NULL DEFAULT 0,
	expires_at       BIGINT NOT NULL DEFAULT 0,
	decided_at       BIGINT NOT NULL DEFAULT 0,
	redeem_by        BIGINT NOT NULL DEFAULT 0,
	decided_by       TEXT NOT NULL DEFAULT '',
	decision_reason  TEXT NOT NULL DEFAULT '',
	serial           BIGINT NOT NULL DEFAULT 0,
	client_addr      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX requests_created ON requests(created_at);
CREATE INDEX requests_user ON requests("user", created_at);
CREATE INDEX requests_state ON requests(state, created_at);

CREATE TABLE approvals (
	request_id TEXT NOT NULL REFERENCES requests(id),
	approver   TEXT NOT NULL,
	decision   TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
	reason     TEXT NOT NULL DEFAULT '',
	time       BIGINT NOT NULL DEFAULT 0,
	-- SQLite's implicit rowid, which orders approvals of the same time.
	rowid      BIGINT GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (request_id, approver)
);

CREATE TABLE tokens (
	hash       TEXT PRIMARY KEY,
	"user"       TEXT NOT NULL,
	issued_at  BIGINT NOT NULL DEFAULT 0,
	expires_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user ON tokens("user");

CREATE TABLE users (
	name        TEXT PRIMARY KEY,
	groups_json TEXT NOT NULL DEFAULT '[]',
	keys_json   TEXT NOT NULL DEFAULT '[]',
	created_at  BIGINT NOT NULL DEFAULT 0,
	created_by  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE sessions (
	id               TEXT PRIMARY KEY,
	request_id       TEXT NOT NULL DEFAULT '',
	"user"             TEXT NOT NULL DEFAULT '',
	host             TEXT NOT NULL DEFAULT '',
	login            TEXT NOT NULL DEFAULT '',
	serial           BIGINT NOT NULL DEFAULT 0,
	target_serial    BIGINT NOT NULL DEFAULT 0,
	client_addr      TEXT NOT NULL DEFAULT '',
	command          TEXT NOT NULL DEFAULT '',
	started_at       BIGINT NOT NULL DEFAULT 0,
	ended_at         BIGINT NOT NULL DEFAULT 0,
	exit_status      BIGINT NOT NULL DEFAULT 0,
	bytes_in         BIGINT NOT NULL DEFAULT 0,
	bytes_out        BIGINT NOT NULL DEFAULT 0,
	recording_path   TEXT NOT NULL DEFAULT '',
	recording_sha256 TEXT NOT NULL DEFAULT '',
	recording_size   BIGINT NOT NULL DEFAULT 0,
	end_reason       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_started ON sessions(started_at);
CREATE INDEX sessions_user ON sessions("user", started_at);
CREATE INDEX sessions_host ON sessions(host, started_at);
CREATE INDEX sessions_live ON sessions(started_at) WHERE ended_at = 0;

-- Session text is always kept here; builds with FTS5 also index it in
-- session_text_fts (see search.go), so either build can open the file.
CREATE TABLE session_text (
	id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	session_id TEXT NOT NULL,
	offset_ns  BIGINT NOT NULL,
	kind       TEXT NOT NULL CHECK (kind IN ('o', 'i', 'm')),
	text       TEXT NOT NULL
);
CREATE INDEX session_text_session ON session_text(session_id, offset_ns);

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BIGINT NOT NULL
);
`

// oldPGStep2 is migration 2 on PostgreSQL.
const oldPGStep2 = `
CREATE TABLE session_text_doc (
	id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	session_id TEXT NOT NULL,
	kind       TEXT NOT NULL CHECK (kind IN ('o', 'i', 'm')),
	offset_ns  BIGINT NOT NULL,
	text       TEXT NOT NULL,
	lines      BYTEA
);
CREATE INDEX session_text_doc_session ON session_text_doc(session_id, offset_ns);
INSERT INTO session_text_doc (id, session_id, kind, offset_ns, text, lines)
	SELECT id, session_id, kind, offset_ns, text, NULL FROM session_text ORDER BY id;
SELECT setval(pg_get_serial_sequence('session_text_doc', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM session_text_doc;
DROP TABLE session_text;
-- PostgreSQL's stand-in for FTS5's trigram index: pg_trgm narrows the
-- ILIKE '%term%' of every search term (search.go).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX session_text_doc_trgm ON session_text_doc USING gin (text gin_trgm_ops);
DELETE FROM meta WHERE key = 'fts_upto';
`

// oldPGStep3 is migration 3 on PostgreSQL.
const oldPGStep3 = `
ALTER TABLE certificates ADD COLUMN extensions TEXT NOT NULL DEFAULT '{}';
ALTER TABLE certificates ADD COLUMN critical_options TEXT NOT NULL DEFAULT '{}';
UPDATE certificates SET extensions = '{"permit-pty":""}' WHERE kind IN ('user', 'target');
`

// oldPGStep4 is migration 4 on PostgreSQL.
const oldPGStep4 = `
CREATE TABLE idempotency_keys (
	"user"        TEXT NOT NULL,
	key         TEXT NOT NULL,
	body_hash   TEXT NOT NULL,
	request_id  TEXT NOT NULL,
	state       TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
	certificate TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	PRIMARY KEY ("user", key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
-- The sessions of one certificate, for its status (serialsessions.go).
CREATE INDEX sessions_serial ON sessions(serial, started_at);
`

// oldPGStep5 is migration 5 on PostgreSQL.
const oldPGStep5 = `
CREATE TABLE hosts (
	name            TEXT PRIMARY KEY,
	address         TEXT NOT NULL,
	host_key        TEXT NOT NULL DEFAULT '',
	labels          TEXT NOT NULL DEFAULT '{}',
	enrolled_at     BIGINT NOT NULL,
	enrolled_by     TEXT NOT NULL DEFAULT '',
	cert_serial     BIGINT NOT NULL DEFAULT 0,
	cert_expires_at BIGINT NOT NULL DEFAULT 0,
	last_seen       BIGINT NOT NULL DEFAULT 0,
	removed_at      BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE join_tokens (
	token_hash TEXT PRIMARY KEY,
	host       TEXT NOT NULL,
	address    TEXT NOT NULL,
	labels     TEXT NOT NULL DEFAULT '{}',
	created_by TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX certificates_host ON certificates(host, kind, valid_before);
`

// oldPGStep6 is migration 6 on PostgreSQL.
const oldPGStep6 = `
CREATE TABLE ephemeral_accounts (
	request_id   TEXT PRIMARY KEY,
	host         TEXT NOT NULL,
	login        TEXT NOT NULL,
	"user"         TEXT NOT NULL,
	uid          BIGINT NOT NULL DEFAULT 0,
	groups       TEXT NOT NULL DEFAULT '[]',
	sudo         TEXT NOT NULL DEFAULT '[]',
	shell        TEXT NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('planned', 'created', 'removing', 'removed', 'failed')),
	attempts     BIGINT NOT NULL DEFAULT 0,
	next_attempt BIGINT NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	create_sent  BIGINT NOT NULL DEFAULT 0,
	planned_at   BIGINT NOT NULL,
	created_at   BIGINT NOT NULL DEFAULT 0,
	removed_at   BIGINT NOT NULL DEFAULT 0,
	UNIQUE (host, login)
);
CREATE UNIQUE INDEX ephemeral_accounts_uid ON ephemeral_accounts(host, uid) WHERE uid > 0;
CREATE INDEX ephemeral_accounts_state ON ephemeral_accounts(state, next_attempt);
CREATE TABLE ephemeral_hosts (
	host       TEXT PRIMARY KEY,
	high_water BIGINT NOT NULL
);
`

// oldPGStep7 is migration 7 on PostgreSQL.
const oldPGStep7 = `
CREATE TABLE sso_identities (
	name        TEXT PRIMARY KEY,
	provider    TEXT NOT NULL,
	subject     TEXT NOT NULL,
	groups_json TEXT NOT NULL DEFAULT '[]',
	expires_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);
CREATE TABLE sso_logins (
	token_hash     TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	provider       TEXT NOT NULL,
	subject        TEXT NOT NULL,
	refresh_sealed BYTEA NOT NULL,
	expires_at     BIGINT NOT NULL
);
`

// oldPGStep8 is migration 8 on PostgreSQL.
const oldPGStep8 = `
CREATE TABLE index_pending (
	session_id TEXT PRIMARY KEY,
	next_line  BIGINT NOT NULL CHECK (next_line >= 0),
	updated_at BIGINT NOT NULL
);
`

// 9 (issue 14): the web console (console.go).
const oldPGStep9 = `
CREATE TABLE console_codes (
	hash               TEXT PRIMARY KEY,
	user               TEXT NOT NULL,
	token_hash         TEXT NOT NULL,
	session_expires_at BIGINT NOT NULL,
	created_at         BIGINT NOT NULL,
	expires_at         BIGINT NOT NULL,
	used_at            BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE console_sessions (
	hash        TEXT PRIMARY KEY,
	user        TEXT NOT NULL,
	token_hash  TEXT NOT NULL,
	csrf        TEXT NOT NULL,
	client_addr TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	ended_at    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE share_links (
	id         TEXT PRIMARY KEY,
	hash       TEXT NOT NULL UNIQUE,
	session_id TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT NOT NULL DEFAULT 0,
	revoked_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX share_links_session ON share_links(session_id, created_at);
`

// oldPGStep10 is migration 10 (issue 11, SSO review): one provider subject
// holds one name; of duplicates the newest identity is kept.
const oldPGStep10 = `
DELETE FROM sso_identities WHERE EXISTS (SELECT 1 FROM sso_identities AS b
	WHERE b.provider = sso_identities.provider AND b.subject = sso_identities.subject
	AND (b.updated_at > sso_identities.updated_at OR (b.updated_at = sso_identities.updated_at AND b.name > sso_identities.name)));
CREATE UNIQUE INDEX sso_identities_subject ON sso_identities(provider, subject);
`

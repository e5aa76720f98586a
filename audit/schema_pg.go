package audit

// pgMigrations are migrations() for PostgreSQL: step i here has the meaning
// of step i there, with the same tables, columns and indexes (a test
// compares them), in PostgreSQL's words: BIGINT for SQLite's 64-bit
// INTEGER, BYTEA for BLOB, identity columns for the rowid aliases that are
// filled by the store, a trigger function for the append-only triggers,
// "user" quoted. A step is added to both lists or to neither.
//
// Every TEXT column is COLLATE "C": SQLite compares text by its bytes
// (BINARY), and so must PostgreSQL whatever the database's locale, so that
// listings sort alike, prefix ranges (EventFilter.Type) select alike and
// ILIKE folds ASCII case only, as SQLite's LIKE does (TestPGCollation).
// Steps 1-10 were edited in place to say so, against the rule of
// migrations(): a new database has it from them, and step 14 gives it to
// a database made before the edit (TestUpgradedPGCollation).
func pgMigrations() []string {
	return []string{pgStep1, pgStep2, pgStep3, pgStep4, pgStep5, pgStep6, pgStep7, pgStep8, pgStep9, pgStep10, pgStep11, pgStep12, pgStep13, pgStep14}
}

// pgStep1 is migration 1 on PostgreSQL.
const pgStep1 = `
CREATE FUNCTION jitssh_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% are append-only', TG_TABLE_NAME;
END;
$$;
CREATE TABLE events (
	seq         BIGINT PRIMARY KEY,
	time        BIGINT NOT NULL,
	type        TEXT COLLATE "C" NOT NULL,
	code        TEXT COLLATE "C" NOT NULL DEFAULT '',
	actor       TEXT COLLATE "C" NOT NULL DEFAULT '',
	"user"        TEXT COLLATE "C" NOT NULL DEFAULT '',
	host        TEXT COLLATE "C" NOT NULL DEFAULT '',
	login       TEXT COLLATE "C" NOT NULL DEFAULT '',
	request_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
	session_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
	serial      BIGINT NOT NULL DEFAULT 0,
	client_addr TEXT COLLATE "C" NOT NULL DEFAULT '',
	message     TEXT COLLATE "C" NOT NULL DEFAULT '',
	data        TEXT COLLATE "C" NOT NULL DEFAULT '{}',
	prev_hash   TEXT COLLATE "C" NOT NULL,
	hash        TEXT COLLATE "C" NOT NULL
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
	head_hash TEXT COLLATE "C" NOT NULL,
	time      BIGINT NOT NULL,
	signature BYTEA,
	key       TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
	FOR EACH ROW EXECUTE FUNCTION jitssh_append_only();

CREATE TABLE certificates (
	serial          BIGINT PRIMARY KEY,
	kind            TEXT COLLATE "C" NOT NULL CHECK (kind IN ('user', 'target', 'host')),
	request_id      TEXT COLLATE "C" NOT NULL DEFAULT '',
	session_id      TEXT COLLATE "C" NOT NULL DEFAULT '',
	"user"            TEXT COLLATE "C" NOT NULL DEFAULT '',
	host            TEXT COLLATE "C" NOT NULL DEFAULT '',
	login           TEXT COLLATE "C" NOT NULL DEFAULT '',
	principals      TEXT COLLATE "C" NOT NULL DEFAULT '[]',
	key_fingerprint TEXT COLLATE "C" NOT NULL DEFAULT '',
	key_id          TEXT COLLATE "C" NOT NULL DEFAULT '',
	valid_after     BIGINT NOT NULL DEFAULT 0,
	valid_before    BIGINT NOT NULL DEFAULT 0,
	client_addr     TEXT COLLATE "C" NOT NULL DEFAULT '',
	issued_at       BIGINT NOT NULL DEFAULT 0,
	revoked_at      BIGINT NOT NULL DEFAULT 0,
	revoke_reason   TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX certificates_user ON certificates("user", issued_at);
CREATE INDEX certificates_request ON certificates(request_id);
CREATE INDEX certificates_valid ON certificates(valid_before);
CREATE INDEX certificates_revoked ON certificates(revoked_at) WHERE revoked_at != 0;

CREATE TABLE requests (
	id               TEXT COLLATE "C" PRIMARY KEY,
	"user"             TEXT COLLATE "C" NOT NULL,
	host             TEXT COLLATE "C" NOT NULL DEFAULT '',
	login            TEXT COLLATE "C" NOT NULL DEFAULT '',
	role             TEXT COLLATE "C" NOT NULL DEFAULT '',
	justification    TEXT COLLATE "C" NOT NULL DEFAULT '',
	state            TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'cancelled', 'issued')),
	ttl              BIGINT NOT NULL DEFAULT 0,
	public_key       TEXT COLLATE "C" NOT NULL DEFAULT '',
	break_glass      BIGINT NOT NULL DEFAULT 0,
	approvals_needed BIGINT NOT NULL DEFAULT 0,
	created_at       BIGINT NOT NULL DEFAULT 0,
	expires_at       BIGINT NOT NULL DEFAULT 0,
	decided_at       BIGINT NOT NULL DEFAULT 0,
	redeem_by        BIGINT NOT NULL DEFAULT 0,
	decided_by       TEXT COLLATE "C" NOT NULL DEFAULT '',
	decision_reason  TEXT COLLATE "C" NOT NULL DEFAULT '',
	serial           BIGINT NOT NULL DEFAULT 0,
	client_addr      TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX requests_created ON requests(created_at);
CREATE INDEX requests_user ON requests("user", created_at);
CREATE INDEX requests_state ON requests(state, created_at);

CREATE TABLE approvals (
	request_id TEXT COLLATE "C" NOT NULL REFERENCES requests(id),
	approver   TEXT COLLATE "C" NOT NULL,
	decision   TEXT COLLATE "C" NOT NULL CHECK (decision IN ('approve', 'deny')),
	reason     TEXT COLLATE "C" NOT NULL DEFAULT '',
	time       BIGINT NOT NULL DEFAULT 0,
	-- SQLite's implicit rowid, which orders approvals of the same time.
	rowid      BIGINT GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (request_id, approver)
);

CREATE TABLE tokens (
	hash       TEXT COLLATE "C" PRIMARY KEY,
	"user"       TEXT COLLATE "C" NOT NULL,
	issued_at  BIGINT NOT NULL DEFAULT 0,
	expires_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user ON tokens("user");

CREATE TABLE users (
	name        TEXT COLLATE "C" PRIMARY KEY,
	groups_json TEXT COLLATE "C" NOT NULL DEFAULT '[]',
	keys_json   TEXT COLLATE "C" NOT NULL DEFAULT '[]',
	created_at  BIGINT NOT NULL DEFAULT 0,
	created_by  TEXT COLLATE "C" NOT NULL DEFAULT ''
);

CREATE TABLE sessions (
	id               TEXT COLLATE "C" PRIMARY KEY,
	request_id       TEXT COLLATE "C" NOT NULL DEFAULT '',
	"user"             TEXT COLLATE "C" NOT NULL DEFAULT '',
	host             TEXT COLLATE "C" NOT NULL DEFAULT '',
	login            TEXT COLLATE "C" NOT NULL DEFAULT '',
	serial           BIGINT NOT NULL DEFAULT 0,
	target_serial    BIGINT NOT NULL DEFAULT 0,
	client_addr      TEXT COLLATE "C" NOT NULL DEFAULT '',
	command          TEXT COLLATE "C" NOT NULL DEFAULT '',
	started_at       BIGINT NOT NULL DEFAULT 0,
	ended_at         BIGINT NOT NULL DEFAULT 0,
	exit_status      BIGINT NOT NULL DEFAULT 0,
	bytes_in         BIGINT NOT NULL DEFAULT 0,
	bytes_out        BIGINT NOT NULL DEFAULT 0,
	recording_path   TEXT COLLATE "C" NOT NULL DEFAULT '',
	recording_sha256 TEXT COLLATE "C" NOT NULL DEFAULT '',
	recording_size   BIGINT NOT NULL DEFAULT 0,
	end_reason       TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX sessions_started ON sessions(started_at);
CREATE INDEX sessions_user ON sessions("user", started_at);
CREATE INDEX sessions_host ON sessions(host, started_at);
CREATE INDEX sessions_live ON sessions(started_at) WHERE ended_at = 0;

-- Session text is always kept here; builds with FTS5 also index it in
-- session_text_fts (see search.go), so either build can open the file.
CREATE TABLE session_text (
	id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	session_id TEXT COLLATE "C" NOT NULL,
	offset_ns  BIGINT NOT NULL,
	kind       TEXT COLLATE "C" NOT NULL CHECK (kind IN ('o', 'i', 'm')),
	text       TEXT COLLATE "C" NOT NULL
);
CREATE INDEX session_text_session ON session_text(session_id, offset_ns);

CREATE TABLE meta (
	key   TEXT COLLATE "C" PRIMARY KEY,
	value BIGINT NOT NULL
);
`

// pgStep2 is migration 2 on PostgreSQL.
const pgStep2 = `
CREATE TABLE session_text_doc (
	id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	session_id TEXT COLLATE "C" NOT NULL,
	kind       TEXT COLLATE "C" NOT NULL CHECK (kind IN ('o', 'i', 'm')),
	offset_ns  BIGINT NOT NULL,
	text       TEXT COLLATE "C" NOT NULL,
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

// pgStep3 is migration 3 on PostgreSQL.
const pgStep3 = `
ALTER TABLE certificates ADD COLUMN extensions TEXT COLLATE "C" NOT NULL DEFAULT '{}';
ALTER TABLE certificates ADD COLUMN critical_options TEXT COLLATE "C" NOT NULL DEFAULT '{}';
UPDATE certificates SET extensions = '{"permit-pty":""}' WHERE kind IN ('user', 'target');
`

// pgStep4 is migration 4 on PostgreSQL.
const pgStep4 = `
CREATE TABLE idempotency_keys (
	"user"        TEXT COLLATE "C" NOT NULL,
	key         TEXT COLLATE "C" NOT NULL,
	body_hash   TEXT COLLATE "C" NOT NULL,
	request_id  TEXT COLLATE "C" NOT NULL,
	state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('in_flight', 'done')),
	certificate TEXT COLLATE "C" NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	PRIMARY KEY ("user", key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
-- The sessions of one certificate, for its status (serialsessions.go).
CREATE INDEX sessions_serial ON sessions(serial, started_at);
`

// pgStep5 is migration 5 on PostgreSQL.
const pgStep5 = `
CREATE TABLE hosts (
	name            TEXT COLLATE "C" PRIMARY KEY,
	address         TEXT COLLATE "C" NOT NULL,
	host_key        TEXT COLLATE "C" NOT NULL DEFAULT '',
	labels          TEXT COLLATE "C" NOT NULL DEFAULT '{}',
	enrolled_at     BIGINT NOT NULL,
	enrolled_by     TEXT COLLATE "C" NOT NULL DEFAULT '',
	cert_serial     BIGINT NOT NULL DEFAULT 0,
	cert_expires_at BIGINT NOT NULL DEFAULT 0,
	last_seen       BIGINT NOT NULL DEFAULT 0,
	removed_at      BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE join_tokens (
	token_hash TEXT COLLATE "C" PRIMARY KEY,
	host       TEXT COLLATE "C" NOT NULL,
	address    TEXT COLLATE "C" NOT NULL,
	labels     TEXT COLLATE "C" NOT NULL DEFAULT '{}',
	created_by TEXT COLLATE "C" NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX certificates_host ON certificates(host, kind, valid_before);
`

// pgStep6 is migration 6 on PostgreSQL.
const pgStep6 = `
CREATE TABLE ephemeral_accounts (
	request_id   TEXT COLLATE "C" PRIMARY KEY,
	host         TEXT COLLATE "C" NOT NULL,
	login        TEXT COLLATE "C" NOT NULL,
	"user"         TEXT COLLATE "C" NOT NULL,
	uid          BIGINT NOT NULL DEFAULT 0,
	groups       TEXT COLLATE "C" NOT NULL DEFAULT '[]',
	sudo         TEXT COLLATE "C" NOT NULL DEFAULT '[]',
	shell        TEXT COLLATE "C" NOT NULL,
	state        TEXT COLLATE "C" NOT NULL CHECK (state IN ('planned', 'created', 'removing', 'removed', 'failed')),
	attempts     BIGINT NOT NULL DEFAULT 0,
	next_attempt BIGINT NOT NULL DEFAULT 0,
	last_error   TEXT COLLATE "C" NOT NULL DEFAULT '',
	create_sent  BIGINT NOT NULL DEFAULT 0,
	planned_at   BIGINT NOT NULL,
	created_at   BIGINT NOT NULL DEFAULT 0,
	removed_at   BIGINT NOT NULL DEFAULT 0,
	UNIQUE (host, login)
);
CREATE UNIQUE INDEX ephemeral_accounts_uid ON ephemeral_accounts(host, uid) WHERE uid > 0;
CREATE INDEX ephemeral_accounts_state ON ephemeral_accounts(state, next_attempt);
CREATE TABLE ephemeral_hosts (
	host       TEXT COLLATE "C" PRIMARY KEY,
	high_water BIGINT NOT NULL
);
`

// pgStep7 is migration 7 on PostgreSQL.
const pgStep7 = `
CREATE TABLE sso_identities (
	name        TEXT COLLATE "C" PRIMARY KEY,
	provider    TEXT COLLATE "C" NOT NULL,
	subject     TEXT COLLATE "C" NOT NULL,
	groups_json TEXT COLLATE "C" NOT NULL DEFAULT '[]',
	expires_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);
CREATE TABLE sso_logins (
	token_hash     TEXT COLLATE "C" PRIMARY KEY,
	name           TEXT COLLATE "C" NOT NULL,
	provider       TEXT COLLATE "C" NOT NULL,
	subject        TEXT COLLATE "C" NOT NULL,
	refresh_sealed BYTEA NOT NULL,
	expires_at     BIGINT NOT NULL
);
`

// pgStep8 is migration 8 on PostgreSQL.
const pgStep8 = `
CREATE TABLE index_pending (
	session_id TEXT COLLATE "C" PRIMARY KEY,
	next_line  BIGINT NOT NULL CHECK (next_line >= 0),
	updated_at BIGINT NOT NULL
);
`

// 9 (issue 14): the web console (console.go).
const pgStep9 = `
CREATE TABLE console_codes (
	hash               TEXT COLLATE "C" PRIMARY KEY,
	user               TEXT COLLATE "C" NOT NULL,
	token_hash         TEXT COLLATE "C" NOT NULL,
	session_expires_at BIGINT NOT NULL,
	created_at         BIGINT NOT NULL,
	expires_at         BIGINT NOT NULL,
	used_at            BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE console_sessions (
	hash        TEXT COLLATE "C" PRIMARY KEY,
	user        TEXT COLLATE "C" NOT NULL,
	token_hash  TEXT COLLATE "C" NOT NULL,
	csrf        TEXT COLLATE "C" NOT NULL,
	client_addr TEXT COLLATE "C" NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	ended_at    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE share_links (
	id         TEXT COLLATE "C" PRIMARY KEY,
	hash       TEXT COLLATE "C" NOT NULL UNIQUE,
	session_id TEXT COLLATE "C" NOT NULL,
	created_by TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT NOT NULL DEFAULT 0,
	revoked_by TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX share_links_session ON share_links(session_id, created_at);
`

// pgStep10 is migration 10 (issue 11, SSO review): one provider subject
// holds one name; of duplicates the newest identity is kept.
const pgStep10 = `
DELETE FROM sso_identities WHERE EXISTS (SELECT 1 FROM sso_identities AS b
	WHERE b.provider = sso_identities.provider AND b.subject = sso_identities.subject
	AND (b.updated_at > sso_identities.updated_at OR (b.updated_at = sso_identities.updated_at AND b.name > sso_identities.name)));
CREATE UNIQUE INDEX sso_identities_subject ON sso_identities(provider, subject);
`

// pgStep11 is migration 11 (issue 12, the change feed between replicas):
// every transaction that appends to the chain notifies FeedChannel once
// at its commit (a statement-level trigger; PostgreSQL folds a
// transaction's identical notifications into one), so each replica's feed
// reads at once instead of at its next poll. Nothing rides on the payload:
// the feed reads the events themselves from its cursor.
const pgStep11 = `
CREATE FUNCTION jitssh_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('jitssh_events', '');
	RETURN NULL;
END;
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events
	FOR EACH STATEMENT EXECUTE FUNCTION jitssh_events_notify();
`

// pgStep12 is migration 12 (issue 12, replicas; flows): login challenges
// and SSO flows in the store (challenges.go).
const pgStep12 = `
CREATE TABLE challenges (
	hash       TEXT COLLATE "C" PRIMARY KEY,
	purpose    TEXT COLLATE "C" NOT NULL,
	subject    TEXT COLLATE "C" NOT NULL,
	addr       TEXT COLLATE "C" NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX challenges_addr ON challenges(addr, expires_at);
CREATE INDEX challenges_expires ON challenges(expires_at);
CREATE TABLE sso_flows (
	hash          TEXT COLLATE "C" PRIMARY KEY,
	kind          TEXT COLLATE "C" NOT NULL,
	provider      TEXT COLLATE "C" NOT NULL,
	addr          TEXT COLLATE "C" NOT NULL,
	sealed        BYTEA NOT NULL,
	poll_interval BIGINT NOT NULL DEFAULT 0,
	next_poll     BIGINT NOT NULL DEFAULT 0,
	live_until    BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL
);
CREATE INDEX sso_flows_addr ON sso_flows(addr, live_until);
CREATE INDEX sso_flows_live ON sso_flows(live_until);
`

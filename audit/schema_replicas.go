package audit

// replicaSchema is migration 12 on SQLite: the replica registry, leases,
// and the replica that records each session (empty for sessions from before).
const replicaSchema = `
CREATE TABLE replicas (
	id            TEXT PRIMARY KEY,
	advertise_url TEXT NOT NULL DEFAULT '',
	bastion_addr  TEXT NOT NULL DEFAULT '',
	instance      TEXT NOT NULL,
	version       TEXT NOT NULL DEFAULT '',
	policy_sha256 TEXT NOT NULL DEFAULT '',
	started_at    INTEGER NOT NULL,
	heartbeat_at  INTEGER NOT NULL
);
CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at INTEGER NOT NULL
);
ALTER TABLE sessions ADD COLUMN replica TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_replica_live ON sessions(replica) WHERE ended_at = 0;
`

// pgStep12 is migration 12 on PostgreSQL (the feed's 11 comes before it
// at merge; the lead renumbers).
const pgStep12 = `
CREATE TABLE replicas (
	id            TEXT PRIMARY KEY,
	advertise_url TEXT NOT NULL DEFAULT '',
	bastion_addr  TEXT NOT NULL DEFAULT '',
	instance      TEXT NOT NULL,
	version       TEXT NOT NULL DEFAULT '',
	policy_sha256 TEXT NOT NULL DEFAULT '',
	started_at    BIGINT NOT NULL,
	heartbeat_at  BIGINT NOT NULL
);
CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
ALTER TABLE sessions ADD COLUMN replica TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_replica_live ON sessions(replica) WHERE ended_at = 0;
`

package audit

// replicaSchema is migration 13 on SQLite: the replica registry, leases,
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

// pgStep13 is migration 13 on PostgreSQL.
const pgStep13 = `
CREATE TABLE replicas (
	id            TEXT COLLATE "C" PRIMARY KEY,
	advertise_url TEXT COLLATE "C" NOT NULL DEFAULT '',
	bastion_addr  TEXT COLLATE "C" NOT NULL DEFAULT '',
	instance      TEXT COLLATE "C" NOT NULL,
	version       TEXT COLLATE "C" NOT NULL DEFAULT '',
	policy_sha256 TEXT COLLATE "C" NOT NULL DEFAULT '',
	started_at    BIGINT NOT NULL,
	heartbeat_at  BIGINT NOT NULL
);
CREATE TABLE leases (
	name       TEXT COLLATE "C" PRIMARY KEY,
	holder     TEXT COLLATE "C" NOT NULL,
	expires_at BIGINT NOT NULL
);
ALTER TABLE sessions ADD COLUMN replica TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX sessions_replica_live ON sessions(replica) WHERE ended_at = 0;
`

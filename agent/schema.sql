-- schema.sql - emberd's SQLite schema, the only one (built into emberd).
--
-- Each "-- migration N: what" line starts migration N. At open, emberd runs
-- every migration above the database's PRAGMA user_version, in order, each
-- in its own transaction that also sets user_version = N. A migration, once
-- released, is never edited: a change to the schema is a new migration at
-- the end. A database whose user_version is above the last migration here
-- was written by a newer emberd and is refused.
--
-- Times are ISO 8601 UTC text ("2026-11-27T12:34:56.789Z"). Names follow
-- ^[a-z0-9][a-z0-9-]{0,62}$ (checked by emberd before any statement).
-- Paths are relative to the state directory and built from ids, never from
-- names.

-- migration 1: tenants, tokens, functions, versions, snapshots, deploys
CREATE TABLE settings (
	key TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;

-- Ids of tenants and functions are never reused (AUTOINCREMENT): records
-- that outlive a delete (the usage ledger) name them by id.
CREATE TABLE tenants (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	created TEXT NOT NULL
) STRICT;

-- API tokens of tenants. Only SHA-256(token) is stored; the token itself
-- is shown once, when it is created. The admin token's hash lives in
-- settings ('admin_token_sha256').
CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	hash BLOB NOT NULL UNIQUE,
	created TEXT NOT NULL
) STRICT;
CREATE INDEX tokens_by_tenant ON tokens(tenant_id);

-- A function exists from its first deploy on; current_version is NULL
-- until a deploy has succeeded (invoke answers 409 not_deployed).
CREATE TABLE functions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	created TEXT NOT NULL,
	current_version INTEGER,
	UNIQUE (tenant_id, name)
) STRICT;

-- One row per successful deploy. dir holds the version's files
-- (tree/, image, snapshot/), e.g. "functions/12/v3".
CREATE TABLE versions (
	function_id INTEGER NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
	version INTEGER NOT NULL,
	created TEXT NOT NULL,
	manifest TEXT NOT NULL,
	dir TEXT NOT NULL,
	deploy_id TEXT NOT NULL,
	PRIMARY KEY (function_id, version)
) STRICT;

-- The snapshot each version is restored from (dir relative to the state
-- directory); workingset_at is set once a working set has been recorded.
CREATE TABLE snapshots (
	function_id INTEGER NOT NULL,
	version INTEGER NOT NULL,
	dir TEXT NOT NULL,
	memory_mib INTEGER NOT NULL,
	created TEXT NOT NULL,
	workingset_at TEXT,
	PRIMARY KEY (function_id, version),
	FOREIGN KEY (function_id, version)
		REFERENCES versions(function_id, version) ON DELETE CASCADE
) STRICT;

-- Deploys name their function by (tenant, name), not by id: a failed first
-- deploy removes the function it created, and its record must stay
-- readable.
CREATE TABLE deploys (
	id TEXT PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	function TEXT NOT NULL,
	state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
	version INTEGER,
	error_step TEXT,
	error_message TEXT,
	error_output TEXT,
	created TEXT NOT NULL,
	finished TEXT
) STRICT;
CREATE INDEX deploys_by_function ON deploys(tenant_id, function);

CREATE TABLE deploy_steps (
	deploy_id TEXT NOT NULL REFERENCES deploys(id) ON DELETE CASCADE,
	seq INTEGER NOT NULL,
	step TEXT NOT NULL,
	detail TEXT NOT NULL,
	at TEXT NOT NULL,
	PRIMARY KEY (deploy_id, seq)
) STRICT;

-- migration 2: per-tenant limits (NULL: emberd's --tenant-* default; 0: none)
-- and per-function scaling: instances kept warm, idle time before a stop
-- (NULL: emberd's --idle-ttl)
ALTER TABLE tenants ADD COLUMN max_instances INTEGER;
ALTER TABLE tenants ADD COLUMN max_memory_mib INTEGER;
ALTER TABLE tenants ADD COLUMN max_concurrency INTEGER;
ALTER TABLE functions ADD COLUMN min_instances INTEGER NOT NULL DEFAULT 0;
ALTER TABLE functions ADD COLUMN idle_ttl_ms INTEGER;
